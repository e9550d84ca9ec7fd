"""The `torch` backend: crowdsight's ONNX graphs run through PyTorch (fp16 + channels-last on CUDA).

The GPU machines this product targets have PyTorch and a CUDA GPU but often no
``onnxruntime-gpu``; this backend runs the *same* ONNX files the ONNX Runtime backend runs, so
there is one model artefact per model and one set of converters. The graph is interpreted node
by node with ``torch.nn.functional`` (crowdsight's models use a few dozen standard ops), once:
on the first call for an input shape `TorchRuntime` records that interpretation with
``torch.export`` (free batch axis) into a ``torch.fx`` GraphModule of aten ops, so every later
call is one generated function instead of a Python loop over ONNX nodes with a dictionary of
named values (the loop held Python's GIL for most of a GPU call, which starved the batching
thread beside camera threads). ``torch.compile`` (option) fuses further; a GraphModule is also
what CUDA graphs capture.

Why not onnx2torch: it imports torchvision at import time, and torchvision's operators fail to
register beside the CPU/GPU torch builds that ship without a matching torchvision
(``RuntimeError: operator torchvision::nms does not exist``, measured here with torch 2.13.0).
Our op set is small, so a ~250-line interpreter that we test op by op against ONNX Runtime is
the smaller dependency.

Example:
    >>> rt = TorchRuntime(Path("csrnet.onnx"), device="cpu")     # doctest: +SKIP
    >>> rt.run({"image": x})[0].shape                              # doctest: +SKIP
    (1, 1, 60, 80)
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from crowdsight.core.errors import ConfigError, ModelError
from crowdsight.models.spec import TensorSpec

try:
    import torch
    import torch.nn.functional as F
except ImportError as exc:  # pragma: no cover - exercised where torch is absent
    raise ConfigError(
        "the torch backend needs PyTorch: pip install 'crowdsight[gpu]' (or use the "
        "onnxruntime backend)"
    ) from exc

Tensor = torch.Tensor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Node:
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any]


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _conv(n: _Node, x: Sequence[Tensor]) -> Tensor:
    w = x[1]
    b = x[2] if len(x) > 2 else None
    k = w.shape[2:]
    pads = list(n.attrs.get("pads", [0] * (2 * len(k))))
    if n.attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise ModelError("Conv with auto_pad is not supported by the torch backend")
    strides = n.attrs.get("strides", [1] * len(k))
    dil = n.attrs.get("dilations", [1] * len(k))
    half = len(pads) // 2
    inp = x[0]
    if pads[:half] != pads[half:]:
        # ONNX pads are (begin..., end...); F.pad takes the last axis first.
        pad_arg: list[int] = []
        for i in reversed(range(half)):
            pad_arg += [pads[i], pads[i + half]]
        inp = F.pad(inp, pad_arg)
        pads = [0] * len(pads)
    return F.conv2d(
        inp, w, b, stride=strides, padding=pads[:half], dilation=dil, groups=n.attrs.get("group", 1)
    )


def _pool_pads(n: _Node, inp: Tensor) -> tuple[Tensor, list[int]]:
    k = n.attrs["kernel_shape"]
    pads = list(n.attrs.get("pads", [0] * (2 * len(k))))
    half = len(pads) // 2
    if pads[:half] != pads[half:]:
        pad_arg: list[int] = []
        for i in reversed(range(half)):
            pad_arg += [pads[i], pads[i + half]]
        fill = -math.inf if n.op == "MaxPool" else 0.0
        return F.pad(inp, pad_arg, value=fill), [0] * half
    return inp, pads[:half]


def _maxpool(n: _Node, x: Sequence[Tensor]) -> Tensor:
    inp, pads = _pool_pads(n, x[0])
    k = n.attrs["kernel_shape"]
    return F.max_pool2d(
        inp,
        k,
        stride=n.attrs.get("strides", [1] * len(k)),
        padding=pads,
        ceil_mode=bool(n.attrs.get("ceil_mode", 0)),
    )


def _avgpool(n: _Node, x: Sequence[Tensor]) -> Tensor:
    inp, pads = _pool_pads(n, x[0])
    k = n.attrs["kernel_shape"]
    return F.avg_pool2d(
        inp,
        k,
        stride=n.attrs.get("strides", [1] * len(k)),
        padding=pads,
        ceil_mode=bool(n.attrs.get("ceil_mode", 0)),
        count_include_pad=bool(n.attrs.get("count_include_pad", 0)),
    )


def _reshape(n: _Node, x: Sequence[Tensor]) -> Tensor:
    shape = [int(v) for v in n.attrs["_const"][1]]
    shape = [x[0].shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return x[0].reshape(shape)


def _axes(n: _Node, x: Sequence[Tensor], rank: int) -> list[int]:
    consts = n.attrs.get("_const", {})
    axes = consts[1] if 1 in consts else n.attrs.get("axes", list(range(rank)))
    return [int(a) % rank for a in axes]


def _squeeze(n: _Node, x: Sequence[Tensor]) -> Tensor:
    out = x[0]
    for a in sorted(_axes(n, x, out.dim()), reverse=True):
        out = out.squeeze(a)
    return out


def _unsqueeze(n: _Node, x: Sequence[Tensor]) -> Tensor:
    out = x[0]
    rank = out.dim() + len(n.attrs.get("_const", {}).get(1, n.attrs.get("axes", [])))
    for a in sorted(_axes(n, x, rank)):
        out = out.unsqueeze(a)
    return out


def _clip(n: _Node, x: Sequence[Tensor]) -> Tensor:
    consts = n.attrs.get("_const", {})
    lo = consts.get(1, n.attrs.get("min"))
    hi = consts.get(2, n.attrs.get("max"))
    lo_f = None if lo is None or len(np.ravel(lo)) == 0 else float(np.ravel(lo)[0])
    hi_f = None if hi is None or len(np.ravel(hi)) == 0 else float(np.ravel(hi)[0])
    return torch.clamp(x[0], lo_f, hi_f)


def _split(n: _Node, x: Sequence[Tensor]) -> tuple[Tensor, ...]:
    axis = int(n.attrs.get("axis", 0))
    sizes = n.attrs.get("_const", {}).get(1, n.attrs.get("split"))
    if sizes is None:
        return tuple(torch.chunk(x[0], len(n.outputs), dim=axis))
    return tuple(torch.split(x[0], [int(s) for s in sizes], dim=axis))


def _pad(n: _Node, x: Sequence[Tensor]) -> Tensor:
    consts = n.attrs.get("_const", {})
    pads = [int(p) for p in consts.get(1, n.attrs.get("pads", []))]
    value = consts.get(2, n.attrs.get("value", 0.0))
    value_f = float(np.ravel(value)[0]) if np.size(value) else 0.0
    mode = n.attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    half = len(pads) // 2
    pad_arg: list[int] = []
    for i in reversed(range(half)):
        pad_arg += [pads[i], pads[i + half]]
    # Drop leading zero pairs on batch/channel axes so reflect/replicate work on 4-D input.
    while len(pad_arg) > 4 and pad_arg[-2:] == [0, 0]:
        pad_arg = pad_arg[:-2]
    if mode == "constant":
        return F.pad(x[0], pad_arg, value=value_f)
    return F.pad(x[0], pad_arg, mode={"edge": "replicate"}.get(mode, mode))


def _resize(n: _Node, x: Sequence[Tensor]) -> Tensor:
    consts = n.attrs.get("_const", {})
    mode = n.attrs.get("mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    ctm = n.attrs.get("coordinate_transformation_mode", b"half_pixel")
    ctm = ctm.decode() if isinstance(ctm, bytes) else str(ctm)
    sizes = consts.get(3)
    scales = consts.get(2)
    size: list[int] | None = None
    if sizes is not None and len(sizes):
        size = [int(s) for s in list(sizes)[2:]]
    elif scales is not None and len(scales):
        size = [
            math.floor(d * float(s)) for d, s in zip(x[0].shape[2:], list(scales)[2:], strict=True)
        ]
    if size is None:
        raise ModelError("Resize without constant scales or sizes is not supported")
    if mode == "nearest":
        return F.interpolate(x[0], size=size, mode="nearest")
    if mode == "linear":
        return F.interpolate(
            x[0], size=size, mode="bilinear", align_corners=(ctm == "align_corners")
        )
    raise ModelError(f"Resize mode {mode!r} is not supported by the torch backend")


def _slice(n: _Node, x: Sequence[Tensor]) -> Tensor:
    consts = n.attrs["_const"]
    starts, ends = list(consts[1]), list(consts[2])
    axes = list(consts.get(3, range(len(starts))))
    steps = list(consts.get(4, [1] * len(starts)))
    index: list[slice] = [slice(None)] * x[0].dim()
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        index[int(a)] = slice(int(s), min(int(e), 2**62), int(st))
    return x[0][tuple(index)]


def _gemm(n: _Node, x: Sequence[Tensor]) -> Tensor:
    a = x[0].T if n.attrs.get("transA", 0) else x[0]
    b = x[1].T if n.attrs.get("transB", 0) else x[1]
    out = float(n.attrs.get("alpha", 1.0)) * (a @ b)
    if len(x) > 2:
        out = out + float(n.attrs.get("beta", 1.0)) * x[2]
    return out


_OPS: dict[str, Callable[[_Node, Sequence[Tensor]], Tensor | tuple[Tensor, ...]]] = {
    "Conv": _conv,
    "Relu": lambda n, x: F.relu(x[0]),
    "LeakyRelu": lambda n, x: F.leaky_relu(x[0], float(n.attrs.get("alpha", 0.01))),
    "Sigmoid": lambda n, x: torch.sigmoid(x[0]),
    "Tanh": lambda n, x: torch.tanh(x[0]),
    "Exp": lambda n, x: torch.exp(x[0]),
    "Softmax": lambda n, x: torch.softmax(x[0], dim=int(n.attrs.get("axis", -1))),
    "Clip": _clip,
    "Add": lambda n, x: x[0] + x[1],
    "Sub": lambda n, x: x[0] - x[1],
    "Mul": lambda n, x: x[0] * x[1],
    "Div": lambda n, x: x[0] / x[1],
    "MatMul": lambda n, x: x[0] @ x[1],
    "Gemm": _gemm,
    "MaxPool": _maxpool,
    "AveragePool": _avgpool,
    "GlobalAveragePool": lambda n, x: x[0].mean(dim=(2, 3), keepdim=True),
    "Transpose": lambda n, x: x[0].permute(*n.attrs["perm"]),
    "Reshape": _reshape,
    "Flatten": lambda n, x: torch.flatten(x[0], int(n.attrs.get("axis", 1))),
    "Concat": lambda n, x: torch.cat(list(x), dim=int(n.attrs["axis"])),
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Identity": lambda n, x: x[0],
    "Split": _split,
    "Pad": _pad,
    "Resize": _resize,
    "Slice": _slice,
}

# Inputs that are shapes, axes or bounds: read once at build time as Python values, so the
# graph has no data-dependent control flow (torch.compile traces it in one piece).
_CONST_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,),
    "Squeeze": (1,),
    "Unsqueeze": (1,),
    "Clip": (1, 2),
    "Split": (1,),
    "Pad": (1, 2),
    "Resize": (1, 2, 3),
    "Slice": (1, 2, 3, 4),
}


def supported_ops() -> frozenset[str]:
    """ONNX op types the torch backend can run."""
    return frozenset(_OPS)


class TorchGraph(torch.nn.Module):
    """An ONNX graph as a torch module: weights as buffers, nodes evaluated in file order.

    Args:
        model: A loaded ``onnx.ModelProto`` (nodes in topological order, as ONNX requires).

    Raises:
        ModelError: the graph uses an op the backend does not implement (listed by name).
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        from onnx import numpy_helper

        graph = model.graph
        arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                arrays[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
        missing = sorted({n.op_type for n in graph.node} - set(_OPS) - {"Constant"})
        if missing:
            raise ModelError(f"the torch backend cannot run op(s) {', '.join(missing)}")
        self.input_names = [i.name for i in graph.input if i.name not in arrays]
        self.output_names = [o.name for o in graph.output]
        self._slots: dict[str, str] = {}
        for i, (name, arr) in enumerate(arrays.items()):
            if arr.dtype.kind == "f":
                slot = f"w{i}"
                self.register_buffer(slot, torch.from_numpy(np.array(arr, copy=True)))
                self._slots[name] = slot
        self._nodes: list[_Node] = []
        for node in graph.node:
            if node.op_type == "Constant":
                continue
            attrs = _attrs(node)
            const_at = _CONST_INPUTS.get(node.op_type, ())
            consts = {
                j: arrays[name].tolist()
                for j, name in enumerate(node.input)
                if j in const_at and name and name in arrays
            }
            if consts:
                attrs["_const"] = consts
            self._nodes.append(_Node(node.op_type, tuple(node.input), tuple(node.output), attrs))

    def use_channels_last(self) -> None:
        """Store 4-D weights NHWC (what cuDNN's tensor-core kernels prefer)."""
        for slot in self._slots.values():
            w = getattr(self, slot)
            if w.dim() == 4:
                setattr(self, slot, w.contiguous(memory_format=torch.channels_last))

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        env: dict[str, Tensor] = dict(zip(self.input_names, inputs, strict=True))
        for name, slot in self._slots.items():
            env[name] = getattr(self, slot)
        for node in self._nodes:
            const_at = _CONST_INPUTS.get(node.op, ())
            args = [env[n] for j, n in enumerate(node.inputs) if n and j not in const_at]
            out = _OPS[node.op](node, args)
            if isinstance(out, tuple):
                env.update(zip(node.outputs, out, strict=True))
            else:
                env[node.outputs[0]] = out
        return tuple(env[name] for name in self.output_names)


def _tensor_spec(value: Any, dtype: str | None = None) -> TensorSpec:
    """A graph input/output (``onnx.ValueInfoProto``) as a `TensorSpec`."""
    tt = value.type.tensor_type
    shape = tuple(
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim
    )
    return TensorSpec(value.name, shape, dtype or _ONNX_DTYPES.get(tt.elem_type, str(tt.elem_type)))


def _free_batch(spec: TensorSpec) -> TensorSpec:
    """The spec with its first axis free (named ``batch``)."""
    if not spec.shape:
        return spec
    return TensorSpec(spec.name, ("batch", *spec.shape[1:]), spec.dtype)


#: ONNX ``TensorProto`` element types by number (the ones crowdsight's graphs use).
_ONNX_DTYPES = {1: "float32", 2: "uint8", 7: "int64", 10: "float16"}


def cuda_available() -> bool:
    """Whether PyTorch sees a CUDA device."""
    return bool(torch.cuda.is_available())


class TorchRuntime:
    """Runs an ONNX file with PyTorch: ``run({input: array}) -> [outputs in graph order]``.

    Args:
        path: ONNX model file (the same file the onnxruntime backend runs).
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or
            ``"cuda:N"``.
        half: Compute in float16 (default: on CUDA only). Halves memory traffic on GPUs;
            on CPUs float16 convolutions are slow, so it stays off there.
        channels_last: NHWC memory layout for 4-D tensors (default: on CUDA only), which
            tensor cores prefer.
        compile: ``torch.compile`` the graph (slow first call, faster steady state; pays off
            for long-running services, not for one-shot analyses).
        trace: Record the interpreted graph once per input shape (any batch size) as a
            ``torch.fx`` GraphModule and call that (default). Off: interpret node by node
            on every call (the reference the traced module is tested against).
        threads: CPU intra-op threads (None: torch's default).

    Inputs and outputs are float32 numpy arrays whatever the compute precision. This is the
    ``torch`` backend of `crowdsight.models.runtime.load_runtime`.
    """

    def __init__(
        self,
        path: Path,
        *,
        device: str = "auto",
        half: bool | None = None,
        channels_last: bool | None = None,
        compile: bool = False,
        threads: int | None = None,
        trace: bool = True,
    ) -> None:
        if not path.exists():
            raise ModelError(f"model file {path} not found; run `crowdsight models install`")
        import onnx

        try:
            model = onnx.load(str(path))
        except Exception as exc:
            raise ModelError(f"cannot load {path}: {exc}") from exc
        if device == "auto":
            device = "cuda" if cuda_available() else "cpu"
        if device.startswith("cuda") and not cuda_available():
            raise ConfigError(f"device {device!r} requested but PyTorch sees no CUDA device")
        if threads is not None and device == "cpu":
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        on_gpu = self.device.type == "cuda"
        self.half = on_gpu if half is None else half
        self.channels_last = on_gpu if channels_last is None else channels_last
        self.dtype = torch.float16 if self.half else torch.float32
        graph = TorchGraph(model).to(self.device, self.dtype).eval()
        if self.channels_last:
            graph.use_channels_last()
        self.graph = graph
        self.input_names = graph.input_names
        self.output_names = graph.output_names
        # Any batch runs (a free batch axis, or a trace per exact shape), whatever the batch
        # the exporter wrote into the file: say so, so callers batch (e.g. a frame's tiles).
        self.inputs = tuple(
            _free_batch(_tensor_spec(v))
            for v in model.graph.input
            if v.name in set(graph.input_names)
        )
        # Outputs come back as float32 whatever the compute precision.
        self.outputs = tuple(_tensor_spec(v, "float32") for v in model.graph.output)
        self._fn: Callable[..., tuple[Tensor, ...]] = (
            torch.compile(graph, dynamic=True) if compile else graph
        )
        self.trace = trace and not compile
        self._traced: dict[tuple[Any, ...], Callable[..., tuple[Tensor, ...]]] = {}
        self._trace_lock = threading.Lock()

    @property
    def traced_shapes(self) -> list[tuple[Any, ...]]:
        """Input signatures (per input: shape without the batch axis, dtype) traced so far."""
        return list(self._traced)

    def _callable(self, tensors: Sequence[Tensor]) -> Callable[..., tuple[Tensor, ...]]:
        """The function that runs these inputs: the traced module for their shape, or the graph.

        A graph whose ONNX file fixes the batch (a Reshape to a constant size, as NanoDet's
        head has) cannot take a free batch axis; it is traced per exact shape instead.
        """
        if not self.trace:
            return self._fn
        key = tuple((tuple(t.shape[1:]), t.dtype) for t in tensors)
        exact = (tuple(int(t.shape[0]) for t in tensors), key)
        fn = self._traced.get(key) or self._traced.get(exact)
        if fn is None:
            with self._trace_lock:
                fn = self._traced.get(key) or self._traced.get(exact)
                if fn is None:
                    fn = self._export(tensors, free_batch=True)
                    if fn is not None:
                        self._traced[key] = fn
                    else:
                        fn = self._export(tensors, free_batch=False) or self.graph
                        self._traced[exact] = fn
        return fn

    def _export(
        self, tensors: Sequence[Tensor], *, free_batch: bool
    ) -> Callable[..., tuple[Tensor, ...]] | None:
        """The graph recorded by ``torch.export`` (None when export cannot follow it).

        With a free batch axis the example batch has two rows (copies of the first): export
        specialises axes of size 1, and the traced module must take any batch size.
        """
        from torch.export import Dim, export

        try:
            if free_batch:
                batch = Dim("batch", min=1)
                example = tuple(torch.cat([t[:1], t[:1]]) for t in tensors)
                program = export(
                    self.graph,
                    example,
                    dynamic_shapes=(tuple({0: batch} for _ in example),),
                    strict=False,
                )
            else:
                program = export(self.graph, tuple(tensors), strict=False)
        except Exception as exc:  # export cannot follow every graph; interpreting still works
            how = "with a free batch axis" if free_batch else "for this shape"
            log.info("torch.export %s failed (%s)", how, str(exc).splitlines()[0])
            if not free_batch:
                log.warning("torch.export failed; interpreting the graph node by node: %s", exc)
            return None
        module: Callable[..., tuple[Tensor, ...]] = program.module()
        return module

    def run(self, inputs: Mapping[str, npt.NDArray[Any]]) -> list[npt.NDArray[np.float32]]:
        """Outputs (float32, graph order) for one batch of named inputs."""
        tensors = []
        for name in self.input_names:
            if name not in inputs:
                raise ModelError(f"missing model input {name!r}")
            t = torch.from_numpy(np.ascontiguousarray(inputs[name])).to(
                self.device, self.dtype, non_blocking=True
            )
            if self.channels_last and t.dim() == 4:
                t = t.contiguous(memory_format=torch.channels_last)
            tensors.append(t)
        fn = self._callable(tensors)
        with torch.inference_mode():
            outs = fn(*tensors)
        return [o.float().cpu().numpy() for o in outs]
