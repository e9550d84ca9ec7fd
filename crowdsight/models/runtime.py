"""One `Runtime` under every model: ``run({input name: array}) -> [outputs in graph order]``.

The backend is a typed choice (`crowdsight.config.runtime.RuntimeConfig.backend`):
``onnxruntime`` (CPU, or CUDA / TensorRT execution providers when the installed onnxruntime
has them) or ``torch`` (`crowdsight.models.torch_backend.TorchRuntime`, the same ONNX files
through PyTorch, fp16 on CUDA). Models never talk to a backend directly: they call
`load_runtime` and then only ``run``, ``inputs`` and ``outputs``, so adding a backend is one
class here and one word in `crowdsight.config.runtime.Backend`. TFLite files (BlazeFace) run
on OpenCV's DNN module whatever the backend, since neither ONNX Runtime nor torch reads them.

The environment variables ``CROWDSIGHT_PROVIDERS`` / ``CROWDSIGHT_ORT_SPIN`` are read only by
`RuntimeConfig.from_env`, which only the edges call (CLI commands and the serve config
loader); a model built without a config gets ONNX Runtime's defaults, whatever the
environment says.

Example:
    >>> cfg = RuntimeConfig(providers=("CPUExecutionProvider",))
    >>> rt = load_runtime(Path("csrnet.onnx"), cfg)          # doctest: +SKIP
    >>> rt.run({"image": x})[0].shape                         # doctest: +SKIP
    (1, 1, 60, 80)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from crowdsight.config.runtime import RuntimeConfig
from crowdsight.core.errors import ConfigError, ModelError
from crowdsight.models.spec import TensorSpec

__all__ = [
    "OpenCvDnnRuntime",
    "OrtRuntime",
    "Runtime",
    "TensorSpec",
    "available_providers",
    "load_runtime",
    "require_backend",
    "takes_batch",
    "uses_accelerator",
]

Array = npt.NDArray[Any]


@runtime_checkable
class Runtime(Protocol):
    """A loaded model: named input arrays (batch on axis 0) → output arrays in graph order."""

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        """The model's inputs, in graph order."""
        ...

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        """The model's outputs, in graph order (the order `run` returns them in)."""
        ...

    def run(self, inputs: Mapping[str, Array]) -> list[Array]:
        """Outputs for one call; every graph input must be in ``inputs``."""
        ...


def require_backend(config: RuntimeConfig) -> None:
    """Fail early, with one actionable line, when the configured backend is not installed.

    Raises:
        ConfigError: ``torch`` was chosen and PyTorch cannot be imported.
    """
    if config.backend == "torch":
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                "the torch backend needs PyTorch: pip install 'crowdsight[gpu]' (or use the "
                "onnxruntime backend)"
            ) from exc


def available_providers(config: RuntimeConfig) -> list[str]:
    """The configured execution providers this onnxruntime has, best first."""
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    return [p for p in config.providers if p in have] or ["CPUExecutionProvider"]


def uses_accelerator(config: RuntimeConfig) -> bool:
    """Whether models run on a GPU (CUDA/TensorRT provider, or a CUDA torch device)."""
    if config.backend == "torch":
        if config.device != "auto":
            return config.device.startswith("cuda")
        from crowdsight.models.torch_backend import cuda_available

        return cuda_available()
    return available_providers(config)[0] != "CPUExecutionProvider"


_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8"}


class OrtRuntime:
    """An ONNX Runtime session behind the `Runtime` contract.

    Args:
        path: ONNX model file.
        config: Providers, threads, spinning, dynamic batch (the backend field is ignored).
    """

    def __init__(self, path: Path, config: RuntimeConfig) -> None:
        import onnxruntime as ort

        if not path.exists():
            raise ModelError(f"model file {path} not found; run `crowdsight models install`")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if config.threads is not None:
            opts.intra_op_num_threads = config.threads
        if not config.spin:
            # Idle intra-op threads sleep instead of spinning, so decoding, tracking and the
            # other cameras' sessions get the cores between inferences.
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model: str | bytes = str(path)
        if config.dynamic_batch:
            model = _with_dynamic_batch(path)
        try:
            self.session = ort.InferenceSession(
                model, sess_options=opts, providers=available_providers(config)
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"cannot load {path}: {exc}") from exc
        self.inputs = tuple(
            TensorSpec(i.name, tuple(i.shape), _ORT_DTYPES.get(i.type, i.type))
            for i in self.session.get_inputs()
        )
        self.outputs = tuple(
            TensorSpec(o.name, tuple(o.shape), _ORT_DTYPES.get(o.type, o.type))
            for o in self.session.get_outputs()
        )

    def run(self, inputs: Mapping[str, Array]) -> list[Array]:
        """All outputs of the graph, in graph order."""
        return list(self.session.run(None, dict(inputs)))


def takes_batch(runtime: Runtime) -> bool:
    """Whether the runtime's inputs take any number of rows (their first axis is not fixed).

    Example:
        >>> class R:
        ...     inputs = (TensorSpec("image", ("batch", 3, 300, 300)),)
        >>> takes_batch(R()), takes_batch(type("F", (), {"inputs": (TensorSpec("x", (1, 3)),)})())
        (True, False)
    """
    return all(not (spec.shape and isinstance(spec.shape[0], int)) for spec in runtime.inputs)


def _with_dynamic_batch(path: Path) -> bytes:
    """The ONNX file with a free first axis on every input and output."""
    import onnx

    model = onnx.load(str(path))
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_param = "batch"  # the exporters fixed it to 1
    return bytes(model.SerializeToString())


class OpenCvDnnRuntime:
    """A TFLite file on OpenCV's DNN module (classic engine, CPU) behind the `Runtime` contract.

    OpenCV names the outputs after its own layers, and their shapes are known only after a
    run, so ``outputs`` lists names with free shapes; callers tell outputs apart by shape.
    """

    def __init__(self, path: Path) -> None:
        import cv2

        if not path.exists():
            raise ModelError(f"model file {path} not found; run `crowdsight models install`")
        try:
            self._net = cv2.dnn.readNetFromTFLite(str(path), cv2.dnn.ENGINE_CLASSIC)
        except cv2.error as exc:
            raise ModelError(f"OpenCV cannot load {path}: {exc}") from exc
        self._out_names: Sequence[str] = list(self._net.getUnconnectedOutLayersNames())
        self.inputs = (TensorSpec("input", (1, 3, None, None)),)
        self.outputs = tuple(TensorSpec(n, (None,)) for n in self._out_names)

    def run(self, inputs: Mapping[str, Array]) -> list[Array]:
        """The outputs for the single NCHW float32 input."""
        if len(inputs) != 1:
            raise ModelError(f"a TFLite model takes one input, got {sorted(inputs)}")
        (x,) = inputs.values()
        self._net.setInput(np.ascontiguousarray(x, np.float32))
        return [np.asarray(o) for o in self._net.forward(self._out_names)]


def load_runtime(path: Path, config: RuntimeConfig | None = None) -> Runtime:
    """The model file ``path`` loaded on the configured backend.

    Args:
        path: An ONNX file (any backend) or a TFLite file (always OpenCV DNN).
        config: Backend and its knobs (None: `RuntimeConfig()`, ONNX Runtime defaults).

    Raises:
        ModelError: the file is missing or the backend cannot load it.
        ConfigError: the torch backend was asked for and PyTorch is not installed.
    """
    config = RuntimeConfig() if config is None else config
    if path.suffix.lower() == ".tflite":
        return OpenCvDnnRuntime(path)
    if config.backend == "torch":
        from crowdsight.models.torch_backend import TorchRuntime

        return TorchRuntime(path, device=config.device, threads=config.threads)
    return OrtRuntime(path, config)
