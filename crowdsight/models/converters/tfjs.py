"""TensorFlow.js graph models (``model.json`` + weight shards) to ONNX, without TensorFlow.

A TF.js graph model is a TensorFlow GraphDef written as JSON (``modelTopology.node``) plus
binary weight shards described by ``weightsManifest``: each constant is stored in manifest
order, as float32, int32, or float16 when the model was quantised (``quantization.dtype``).

`load_graph` parses both into a `TfGraph` (float16 weights widened to float32), folds every
node whose inputs are all constants with the numpy reference below, and `to_onnx` writes an
ONNX graph op by op. TensorFlow ops work on NHWC tensors; ONNX's Conv/MaxPool/Resize on NCHW,
so those three are wrapped in a pair of Transposes (ONNX Runtime's transpose optimiser cancels
the pairs that meet, so the converted model runs as a plain NCHW network).

`run_reference` executes the same graph with numpy following TensorFlow's definitions; the
tests compare it with the ONNX model op by op on small inputs, and the NanoDet converter
compares them on the whole network before writing the file.

Supported ops: those NanoDet (and similar small CNNs) use: Placeholder, Const, Identity,
Transpose, Add/AddV2, Mul, Sub, Conv2D (grouped when the filter's input depth divides the
input's), DepthwiseConv2dNative, Pad/PadV2, Relu, Relu6, LeakyRelu, Sigmoid, MaxPool,
ConcatV2, ResizeBilinear, SplitV, Reshape, SparseToDense. Anything else is refused by name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from crowdsight.core.errors import ModelError

Array = npt.NDArray[Any]

_DTYPES: dict[str, npt.DTypeLike] = {"float32": np.float32, "int32": np.int32}


@dataclass
class TfNode:
    """One GraphDef node: ``inputs`` are tensor references (``name`` or ``name:k``)."""

    name: str
    op: str
    inputs: list[str]
    attr: dict[str, Any]


@dataclass
class TfGraph:
    """A parsed TF.js graph: nodes in topological order, constants, inputs and outputs."""

    nodes: list[TfNode]
    consts: dict[str, Array]
    inputs: dict[str, tuple[int, ...]]
    outputs: list[str]
    signature_outputs: dict[str, tuple[int, ...]] = field(default_factory=dict)


def _ref(name: str) -> tuple[str, int]:
    """``'node:1'`` -> ``('node', 1)``; control inputs (``^node``) are not data."""
    base, _, idx = name.partition(":")
    return base, int(idx) if idx else 0


def _key(name: str) -> str:
    base, idx = _ref(name)
    return base if idx == 0 else f"{base}:{idx}"


def _attr_ints(attr: Mapping[str, Any], key: str) -> list[int]:
    return [int(v) for v in attr.get(key, {}).get("list", {}).get("i", [])]


def _attr_str(attr: Mapping[str, Any], key: str, default: str = "") -> str:
    import base64

    raw = attr.get(key, {}).get("s")
    return base64.b64decode(raw).decode() if raw else default


def read_weights(manifest: Sequence[Mapping[str, Any]], folder: Path) -> dict[str, Array]:
    """Every weight of a ``weightsManifest`` as numpy arrays (float16 widened to float32)."""
    out: dict[str, Array] = {}
    for group in manifest:
        blob = b"".join((folder / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            shape = tuple(int(s) for s in w["shape"])
            count = int(np.prod(shape)) if shape else 1
            stored = (w.get("quantization") or {}).get("dtype") or w["dtype"]
            if stored == "float16":
                dtype: npt.DTypeLike = np.float16
            elif stored in _DTYPES:
                dtype = _DTYPES[stored]
            else:
                raise ModelError(f"weight {w['name']}: unsupported stored dtype {stored!r}")
            nbytes = count * np.dtype(dtype).itemsize
            if offset + nbytes > len(blob):
                raise ModelError(f"weight shards end before {w['name']}; truncated download?")
            arr = np.frombuffer(blob, dtype=dtype, count=count, offset=offset).reshape(shape)
            out[w["name"]] = arr.astype(_DTYPES.get(w["dtype"], np.float32))
            offset += nbytes
    return out


def load_graph(model_json: Path) -> TfGraph:
    """Parse a TF.js graph model and fold its constant sub-graphs.

    Raises:
        ModelError: not a graph model, missing shards, or an unsupported op.
    """
    try:
        doc = json.loads(model_json.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read TF.js model {model_json}: {exc}") from exc
    if doc.get("format") != "graph-model":
        raise ModelError(f"{model_json.name} is not a TF.js graph model")
    consts = read_weights(doc["weightsManifest"], model_json.parent)
    raw = doc["modelTopology"]["node"]
    nodes = [
        TfNode(
            n["name"],
            n["op"],
            [i for i in n.get("input", []) if not i.startswith("^")],
            n.get("attr", {}),
        )
        for n in raw
    ]
    unknown = sorted({n.op for n in nodes} - set(_OPS) - {"Const", "Placeholder"})
    if unknown:
        raise ModelError(f"{model_json.name}: unsupported TF ops {', '.join(unknown)}")
    inputs = {
        n.name: tuple(int(d["size"]) for d in n.attr["shape"]["shape"]["dim"])
        for n in nodes
        if n.op == "Placeholder"
    }
    sig = doc.get("signature", {}).get("outputs", {})
    outputs = sorted((k.split(":")[0] for k in sig), key=_natural) or [nodes[-1].name]
    sig_shapes = {
        k.split(":")[0]: tuple(int(d["size"]) for d in v["tensorShape"]["dim"])
        for k, v in sig.items()
    }
    graph = TfGraph(_topological(nodes), consts, inputs, outputs, sig_shapes)
    _fold_constants(graph)
    return graph


def _natural(name: str) -> tuple[str, int]:
    """``Identity`` < ``Identity_1`` < ``Identity_10`` (signature outputs in index order)."""
    base, _, num = name.rpartition("_")
    return (base, int(num)) if num.isdigit() else (name, -1)


def _topological(nodes: list[TfNode]) -> list[TfNode]:
    by_name = {n.name: n for n in nodes}
    done: set[str] = set()
    order: list[TfNode] = []
    for root in nodes:
        stack: list[tuple[TfNode, bool]] = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if node.name in done:
                continue
            if expanded:
                done.add(node.name)
                order.append(node)
                continue
            stack.append((node, True))
            for inp in node.inputs:
                dep = by_name.get(_ref(inp)[0])
                if dep is not None and dep.name not in done:
                    stack.append((dep, False))
    return order


def _fold_constants(graph: TfGraph) -> None:
    """Evaluate nodes whose inputs are all constants (shape arithmetic, SparseToDense...)."""
    kept: list[TfNode] = []
    for node in graph.nodes:
        if node.op == "Const":
            continue
        if node.op != "Placeholder" and all(_key(i) in graph.consts for i in node.inputs):
            outs = _OPS[node.op].ref(node, [graph.consts[_key(i)] for i in node.inputs])
            for k, arr in enumerate(outs):
                graph.consts[node.name if k == 0 else f"{node.name}:{k}"] = arr
            continue
        kept.append(node)
    graph.nodes = kept


# ---------------------------------------------------------------------------------------
# numpy reference (TensorFlow semantics, NHWC)


def _conv_ref(x: Array, w: Array, strides: Sequence[int], pads: Sequence[int]) -> Array:
    """NHWC convolution with an HWIO filter, grouped when I divides the input depth."""
    x = np.pad(x, ((0, 0), (pads[0], pads[2]), (pads[1], pads[3]), (0, 0)))
    kh, kw, cin_g, cout = w.shape
    groups = x.shape[3] // cin_g
    sh, sw = strides
    oh = (x.shape[1] - kh) // sh + 1
    ow = (x.shape[2] - kw) // sw + 1
    out = np.zeros((x.shape[0], oh, ow, cout), np.float64)
    cout_g = cout // groups
    for g in range(groups):
        xg = x[..., g * cin_g : (g + 1) * cin_g]
        wg = w[..., g * cout_g : (g + 1) * cout_g]
        for i in range(kh):
            for j in range(kw):
                patch = xg[:, i : i + sh * oh : sh, j : j + sw * ow : sw, :]
                out[..., g * cout_g : (g + 1) * cout_g] += patch @ wg[i, j]
    return out.astype(np.float32)


def _same_pads(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


def _spatial_pads(node: TfNode, x_shape: Sequence[int], kh: int, kw: int) -> list[int]:
    """[top, left, bottom, right] for a NHWC op's ``padding`` attribute."""
    mode = _attr_str(node.attr, "padding", "VALID")
    strides = _attr_ints(node.attr, "strides") or [1, 1, 1, 1]
    if mode == "VALID":
        return [0, 0, 0, 0]
    if mode == "SAME":
        t, b = _same_pads(int(x_shape[1]), kh, strides[1])
        left, r = _same_pads(int(x_shape[2]), kw, strides[2])
        return [t, left, b, r]
    if mode == "EXPLICIT":
        p = _attr_ints(node.attr, "explicit_paddings")
        return [p[2], p[4], p[3], p[5]]
    raise ModelError(f"{node.name}: padding {mode!r} not supported")


def _check_nhwc(node: TfNode) -> None:
    fmt = _attr_str(node.attr, "data_format", "NHWC")
    if fmt != "NHWC":
        raise ModelError(f"{node.name}: data_format {fmt} not supported")
    dil = _attr_ints(node.attr, "dilations")
    if dil and any(d != 1 for d in dil):
        raise ModelError(f"{node.name}: dilated convolutions not supported")


def _ref_conv2d(node: TfNode, x: list[Array]) -> list[Array]:
    _check_nhwc(node)
    w = x[1]
    if node.op == "DepthwiseConv2dNative":  # HW C M -> grouped HW 1 (C*M)
        kh, kw, c, m = w.shape
        w = w.reshape(kh, kw, 1, c * m)
    s = _attr_ints(node.attr, "strides") or [1, 1, 1, 1]
    pads = _spatial_pads(node, x[0].shape, w.shape[0], w.shape[1])
    return [_conv_ref(x[0], w, (s[1], s[2]), pads)]


def _ref_maxpool(node: TfNode, x: list[Array]) -> list[Array]:
    _check_nhwc(node)
    k = _attr_ints(node.attr, "ksize")
    s = _attr_ints(node.attr, "strides")
    t, left, b, r = _spatial_pads(node, x[0].shape, k[1], k[2])
    xp = np.pad(x[0], ((0, 0), (t, b), (left, r), (0, 0)), constant_values=-np.inf)
    oh = (xp.shape[1] - k[1]) // s[1] + 1
    ow = (xp.shape[2] - k[2]) // s[2] + 1
    out = np.full((xp.shape[0], oh, ow, xp.shape[3]), -np.inf, np.float32)
    for i in range(k[1]):
        for j in range(k[2]):
            out = np.maximum(out, xp[:, i : i + s[1] * oh : s[1], j : j + s[2] * ow : s[2]])
    return [out]


def _ref_resize_bilinear(node: TfNode, x: list[Array]) -> list[Array]:
    """tf.image.resize_bilinear with ``half_pixel_centers`` (or TF's legacy mapping)."""
    img, (oh, ow) = x[0], (int(v) for v in x[1])
    half = bool(node.attr.get("half_pixel_centers", {}).get("b", False))
    if node.attr.get("align_corners", {}).get("b", False):
        raise ModelError(f"{node.name}: align_corners=True not supported")

    def axis(out: int, inp: int) -> tuple[Array, Array, Array]:
        scale = inp / out
        pos = np.arange(out, dtype=np.float64)
        src = (pos + 0.5) * scale - 0.5 if half else pos * scale
        lo = np.floor(src)
        frac = src - lo
        lo_i = np.clip(lo, 0, inp - 1).astype(np.int64)
        hi_i = np.clip(lo + 1, 0, inp - 1).astype(np.int64)
        return lo_i, hi_i, frac

    y0, y1, fy = axis(oh, img.shape[1])
    x0, x1, fx = axis(ow, img.shape[2])
    top = (
        img[:, y0][:, :, x0] * (1 - fx)[None, None, :, None]
        + img[:, y0][:, :, x1] * fx[None, None, :, None]
    )
    bot = (
        img[:, y1][:, :, x0] * (1 - fx)[None, None, :, None]
        + img[:, y1][:, :, x1] * fx[None, None, :, None]
    )
    return [(top * (1 - fy)[None, :, None, None] + bot * fy[None, :, None, None]).astype(img.dtype)]


def _ref_pad(node: TfNode, x: list[Array]) -> list[Array]:
    value = float(x[2]) if len(x) > 2 else 0.0
    return [np.pad(x[0], [tuple(int(v) for v in p) for p in x[1]], constant_values=value)]


def _ref_split(node: TfNode, x: list[Array]) -> list[Array]:
    sizes = [int(v) for v in x[1]]
    axis = int(x[2]) % x[0].ndim
    if -1 in sizes:
        sizes[sizes.index(-1)] = x[0].shape[axis] - (sum(sizes) + 1)
    return list(np.split(x[0], np.cumsum(sizes)[:-1], axis=axis))


def _ref_sparse_to_dense(node: TfNode, x: list[Array]) -> list[Array]:
    indices, shape, values, default = x
    out = np.full([int(s) for s in np.atleast_1d(shape)], default, dtype=np.asarray(values).dtype)
    idx = np.asarray(indices).reshape(-1, out.ndim) if out.ndim else np.zeros((0, 0))
    vals = np.broadcast_to(values, (idx.shape[0],))
    for row, v in zip(idx, vals, strict=True):
        out[tuple(int(i) for i in row)] = v
    return [out]


def _ref_leaky(node: TfNode, x: list[Array]) -> list[Array]:
    alpha = float(node.attr.get("alpha", {}).get("f", 0.2))
    return [np.where(x[0] >= 0, x[0], alpha * x[0]).astype(x[0].dtype)]


# ---------------------------------------------------------------------------------------
# ONNX emission


class _Emitter:
    """Accumulates ONNX nodes and initialisers with unique names."""

    def __init__(self, consts: Mapping[str, Array]) -> None:
        self.consts = consts
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, onnx.TensorProto] = {}
        self._n = 0

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}__{self._n}"

    def const(self, name: str, value: Array) -> str:
        if name not in self.inits:
            self.inits[name] = numpy_helper.from_array(np.asarray(value), name)
        return name

    def tensor(self, ref: str) -> str:
        """ONNX value name of a TF tensor reference, adding an initialiser for constants."""
        key = _key(ref)
        if key in self.consts:
            arr = self.consts[key]
            if arr.dtype == np.float64:
                arr = arr.astype(np.float32)
            return self.const(key, arr)
        return key

    def add(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=self.fresh(op), **attrs))
        return output

    def to_nchw(self, name: str) -> str:
        return self.add("Transpose", [name], self.fresh(name + "_nchw"), perm=[0, 3, 1, 2])

    def to_nhwc(self, name: str, out: str) -> str:
        return self.add("Transpose", [name], out, perm=[0, 2, 3, 1])


def _emit_conv(e: _Emitter, node: TfNode, shapes: Mapping[str, tuple[int, ...]]) -> None:
    _check_nhwc(node)
    w = e.consts[_key(node.inputs[1])]
    if node.op == "DepthwiseConv2dNative":
        kh, kw, c, m = w.shape
        w = w.reshape(kh, kw, 1, c * m)
    x_shape = shapes[_key(node.inputs[0])]
    groups = x_shape[3] // w.shape[2]
    s = _attr_ints(node.attr, "strides") or [1, 1, 1, 1]
    t, left, b, r = _spatial_pads(node, x_shape, w.shape[0], w.shape[1])
    wname = e.const(node.name + "/W", np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
    y = e.add(
        "Conv",
        [e.to_nchw(e.tensor(node.inputs[0])), wname],
        e.fresh(node.name),
        strides=[s[1], s[2]],
        pads=[t, left, b, r],
        group=groups,
        kernel_shape=[int(w.shape[0]), int(w.shape[1])],
    )
    e.to_nhwc(y, node.name)


def _emit_maxpool(e: _Emitter, node: TfNode, shapes: Mapping[str, tuple[int, ...]]) -> None:
    _check_nhwc(node)
    k = _attr_ints(node.attr, "ksize")
    s = _attr_ints(node.attr, "strides")
    pads = _spatial_pads(node, shapes[_key(node.inputs[0])], k[1], k[2])
    y = e.add(
        "MaxPool",
        [e.to_nchw(e.tensor(node.inputs[0]))],
        e.fresh(node.name),
        kernel_shape=[k[1], k[2]],
        strides=[s[1], s[2]],
        pads=pads,
    )
    e.to_nhwc(y, node.name)


def _emit_resize(e: _Emitter, node: TfNode, shapes: Mapping[str, tuple[int, ...]]) -> None:
    x_shape = shapes[_key(node.inputs[0])]
    oh, ow = (int(v) for v in e.consts[_key(node.inputs[1])])
    half = bool(node.attr.get("half_pixel_centers", {}).get("b", False))
    sizes = e.const(node.name + "/sizes", np.array([x_shape[0], x_shape[3], oh, ow], np.int64))
    y = e.add(
        "Resize",
        [e.to_nchw(e.tensor(node.inputs[0])), "", "", sizes],
        e.fresh(node.name),
        mode="linear",
        coordinate_transformation_mode="half_pixel" if half else "asymmetric",
    )
    e.to_nhwc(y, node.name)


def _emit_pad(e: _Emitter, node: TfNode, shapes: Mapping[str, tuple[int, ...]]) -> None:
    p = e.consts[_key(node.inputs[1])].astype(np.int64)
    pads = e.const(node.name + "/pads", np.concatenate([p[:, 0], p[:, 1]]))
    ins = [e.tensor(node.inputs[0]), pads]
    if len(node.inputs) > 2:
        value = np.asarray(e.consts[_key(node.inputs[2])], np.float32).reshape(())
        ins.append(e.const(node.name + "/value", value))
    e.add("Pad", ins, node.name, mode="constant")


def _emit_split(e: _Emitter, node: TfNode, shapes: Mapping[str, tuple[int, ...]]) -> None:
    x_shape = shapes[_key(node.inputs[0])]
    axis = int(e.consts[_key(node.inputs[2])]) % len(x_shape)
    sizes = [int(v) for v in e.consts[_key(node.inputs[1])]]
    if -1 in sizes:
        sizes[sizes.index(-1)] = x_shape[axis] - (sum(sizes) + 1)
    split = e.const(node.name + "/split", np.array(sizes, np.int64))
    outs = [node.name] + [f"{node.name}:{k}" for k in range(1, len(sizes))]
    e.nodes.append(
        helper.make_node(
            "Split", [e.tensor(node.inputs[0]), split], outs, name=e.fresh("Split"), axis=axis
        )
    )


def _emit_simple(onnx_op: str, **fixed: Any) -> Callable[[_Emitter, TfNode, Any], None]:
    def emit(e: _Emitter, node: TfNode, shapes: Any) -> None:
        attrs = dict(fixed)
        if onnx_op == "LeakyRelu":
            attrs["alpha"] = float(node.attr.get("alpha", {}).get("f", 0.2))
        e.add(onnx_op, [e.tensor(i) for i in node.inputs], node.name, **attrs)

    return emit


def _emit_transpose(e: _Emitter, node: TfNode, shapes: Any) -> None:
    perm = [int(v) for v in e.consts[_key(node.inputs[1])]]
    e.add("Transpose", [e.tensor(node.inputs[0])], node.name, perm=perm)


def _emit_concat(e: _Emitter, node: TfNode, shapes: Mapping[str, tuple[int, ...]]) -> None:
    rank = len(shapes[_key(node.inputs[0])])
    axis = int(e.consts[_key(node.inputs[-1])]) % rank
    e.add("Concat", [e.tensor(i) for i in node.inputs[:-1]], node.name, axis=axis)


def _emit_reshape(e: _Emitter, node: TfNode, shapes: Any) -> None:
    shape = e.const(node.name + "/shape", e.consts[_key(node.inputs[1])].astype(np.int64))
    e.add("Reshape", [e.tensor(node.inputs[0]), shape], node.name)


def _emit_clip6(e: _Emitter, node: TfNode, shapes: Any) -> None:
    lo = e.const("relu6/lo", np.array(0.0, np.float32))
    hi = e.const("relu6/hi", np.array(6.0, np.float32))
    e.add("Clip", [e.tensor(node.inputs[0]), lo, hi], node.name)


def _emit_constant_only(e: _Emitter, node: TfNode, shapes: Any) -> None:
    raise ModelError(f"{node.name}: {node.op} is only supported on constant inputs")


@dataclass(frozen=True)
class _Op:
    """An op's numpy reference and its ONNX emitter."""

    ref: Callable[[TfNode, list[Array]], list[Array]]
    emit: Callable[[_Emitter, TfNode, Mapping[str, tuple[int, ...]]], None]


def _unary(fn: Callable[[Array], Array]) -> Callable[[TfNode, list[Array]], list[Array]]:
    return lambda node, x: [np.asarray(fn(x[0]))]


def _binary(fn: Callable[[Array, Array], Array]) -> Callable[[TfNode, list[Array]], list[Array]]:
    return lambda node, x: [np.asarray(fn(x[0], x[1]))]


_OPS: dict[str, _Op] = {
    "Identity": _Op(_unary(lambda a: a), _emit_simple("Identity")),
    "Transpose": _Op(lambda n, x: [np.transpose(x[0], [int(v) for v in x[1]])], _emit_transpose),
    "Add": _Op(_binary(np.add), _emit_simple("Add")),
    "AddV2": _Op(_binary(np.add), _emit_simple("Add")),
    "Sub": _Op(_binary(np.subtract), _emit_simple("Sub")),
    "Mul": _Op(_binary(np.multiply), _emit_simple("Mul")),
    "Conv2D": _Op(_ref_conv2d, _emit_conv),
    "DepthwiseConv2dNative": _Op(_ref_conv2d, _emit_conv),
    "Pad": _Op(_ref_pad, _emit_pad),
    "PadV2": _Op(_ref_pad, _emit_pad),
    "Relu": _Op(_unary(lambda a: np.maximum(a, 0)), _emit_simple("Relu")),
    "Relu6": _Op(_unary(lambda a: np.clip(a, 0, 6)), _emit_clip6),
    "LeakyRelu": _Op(_ref_leaky, _emit_simple("LeakyRelu")),
    "Sigmoid": _Op(
        _unary(lambda a: (1.0 / (1.0 + np.exp(-a))).astype(a.dtype)), _emit_simple("Sigmoid")
    ),
    "MaxPool": _Op(_ref_maxpool, _emit_maxpool),
    "ConcatV2": _Op(lambda n, x: [np.concatenate(x[:-1], axis=int(x[-1]))], _emit_concat),
    "ResizeBilinear": _Op(_ref_resize_bilinear, _emit_resize),
    "SplitV": _Op(_ref_split, _emit_split),
    "Reshape": _Op(lambda n, x: [x[0].reshape([int(v) for v in x[1]])], _emit_reshape),
    "SparseToDense": _Op(_ref_sparse_to_dense, _emit_constant_only),
}


def supported_ops() -> frozenset[str]:
    """TF op names this converter handles (besides Const and Placeholder)."""
    return frozenset(_OPS)


def run_reference(
    graph: TfGraph, feeds: Mapping[str, Array], *, keep_all: bool = False
) -> dict[str, Array]:
    """Run the graph with numpy; returns the outputs (or every tensor with ``keep_all``)."""
    values: dict[str, Array] = {k: np.asarray(v, np.float32) for k, v in feeds.items()}
    values.update(graph.consts)
    for node in graph.nodes:
        if node.op == "Placeholder":
            if node.name not in values:
                raise ModelError(f"missing input {node.name!r}")
            continue
        outs = _OPS[node.op].ref(node, [values[_key(i)] for i in node.inputs])
        for k, arr in enumerate(outs):
            values[node.name if k == 0 else f"{node.name}:{k}"] = arr
    if keep_all:
        return values
    return {name: values[name] for name in graph.outputs}


def infer_shapes(graph: TfGraph) -> dict[str, tuple[int, ...]]:
    """Static shapes of every tensor, found by running the reference on zeros."""
    feeds = {name: np.zeros(shape, np.float32) for name, shape in graph.inputs.items()}
    return {k: tuple(v.shape) for k, v in run_reference(graph, feeds, keep_all=True).items()}


def to_onnx(
    graph: TfGraph, *, output_names: Mapping[str, str] | None = None, opset: int = 17
) -> onnx.ModelProto:
    """The graph as an ONNX model (float32, NCHW/NHWC exactly as the TF graph had them).

    Args:
        graph: A loaded, constant-folded graph.
        output_names: Optional renames of the graph outputs (TF name -> ONNX name).
        opset: ONNX opset (17: Split takes sizes as an input, Resize has half_pixel).
    """
    shapes = infer_shapes(graph)
    e = _Emitter(graph.consts)
    for node in graph.nodes:
        if node.op == "Placeholder":
            continue
        _OPS[node.op].emit(e, node, shapes)
    renames = dict(output_names or {})
    outputs = []
    for name in graph.outputs:
        final = renames.get(name, name)
        if final != name:
            e.add("Identity", [name], final)
        outputs.append(helper.make_tensor_value_info(final, TensorProto.FLOAT, shapes[name]))
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
        for name, shape in graph.inputs.items()
    ]
    g = helper.make_graph(e.nodes, "tfjs", inputs, outputs, list(e.inits.values()))
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
