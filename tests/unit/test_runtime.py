"""The model `Runtime` seam: typed backend config, env read once, no converters at run time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from onnx import TensorProto, helper

from crowdsight.config.runtime import DEFAULT_PROVIDERS, RuntimeConfig
from crowdsight.core.errors import ModelError
from crowdsight.models.runtime import OrtRuntime, Runtime, load_runtime
from tests.conftest import require_model


@pytest.mark.parametrize(
    ("environ", "providers", "spin"),
    [
        ({}, DEFAULT_PROVIDERS, False),
        ({"CROWDSIGHT_PROVIDERS": "CPUExecutionProvider"}, ("CPUExecutionProvider",), False),
        (
            {"CROWDSIGHT_PROVIDERS": " CUDAExecutionProvider, CPUExecutionProvider ,"},
            ("CUDAExecutionProvider", "CPUExecutionProvider"),
            False,
        ),
        ({"CROWDSIGHT_ORT_SPIN": "1"}, DEFAULT_PROVIDERS, True),
        ({"CROWDSIGHT_ORT_SPIN": "0"}, DEFAULT_PROVIDERS, False),
    ],
)
def test_config_reads_the_environment_once(
    environ: dict[str, str], providers: tuple[str, ...], spin: bool
) -> None:
    cfg = RuntimeConfig.from_env(environ)
    assert (cfg.backend, cfg.providers, cfg.spin) == ("onnxruntime", providers, spin)


def test_config_is_typed_and_closed() -> None:
    with pytest.raises(ValueError, match="backend"):
        RuntimeConfig(backend="tensorflow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="extra"):
        RuntimeConfig(provider="cpu")  # type: ignore[call-arg]
    cfg = RuntimeConfig.from_env({}, threads=2)
    assert cfg.with_threads(None).threads == 2 and cfg.with_threads(1).threads == 1


def _add_one(path: Path, batch: int | str = 1) -> Path:
    """A one-node ONNX model: y = x + 1 on a [batch, 3] float input."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "g", [x], [y], [one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def test_onnxruntime_backend_runs_named_inputs(tmp_path: Path) -> None:
    rt = load_runtime(_add_one(tmp_path / "m.onnx"), RuntimeConfig(threads=1))
    assert isinstance(rt, OrtRuntime) and isinstance(rt, Runtime)
    assert [(t.name, t.shape, t.dtype) for t in rt.inputs] == [("x", (1, 3), "float32")]
    (y,) = rt.run({"x": np.zeros((1, 3), np.float32)})
    assert y.tolist() == [[1.0, 1.0, 1.0]]


def test_dynamic_batch_frees_the_first_axis(tmp_path: Path) -> None:
    path = _add_one(tmp_path / "m.onnx")
    fixed = load_runtime(path, RuntimeConfig())
    with pytest.raises(Exception, match=r"dimension|Got invalid"):
        fixed.run({"x": np.zeros((4, 3), np.float32)})
    free = load_runtime(path, RuntimeConfig(dynamic_batch=True))
    assert free.run({"x": np.zeros((4, 3), np.float32)})[0].shape == (4, 3)


def test_missing_model_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found; run `crowdsight models install`"):
        load_runtime(tmp_path / "nope.onnx", RuntimeConfig())


_RUN_TIME_PROBE = """
import json, sys
import crowdsight.perception.detector, crowdsight.perception.yolo, crowdsight.perception.density
import crowdsight.privacy.faces, crowdsight.privacy.redaction, crowdsight.pipeline.camera
import crowdsight.models.runtime, crowdsight.models.manifest
if sys.argv[1] == "load":
    from crowdsight.pipeline.camera import CameraPipeline
    from crowdsight.privacy.faces import FaceDetector
    CameraPipeline("cam")
    FaceDetector("full")
install_time = ("onnx.", "google.protobuf", "crowdsight.models.converters", "crowdsight.models.reg")
print(json.dumps(sorted(m for m in sys.modules if m == "onnx" or m.startswith(install_time))))
"""


@pytest.mark.parametrize("what", ["import", "load"])
def test_run_time_code_never_imports_onnx_protobuf_or_converters(what: str) -> None:
    if what == "load":
        for name in ("people-ssdlite", "csrnet", "blazeface"):
            require_model(name)
    out = subprocess.run(
        [sys.executable, "-c", _RUN_TIME_PROBE, what],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_analyze_backend_torch_without_pytorch_is_one_clear_line(tmp_path: Path) -> None:
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.zeros((48, 64, 3), np.uint8))
    hide_torch = (
        "import sys; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
        "from crowdsight.cli import main; main()"
    )
    args = ["crowdsight", "analyze", str(image), "--out", str(tmp_path / "out")]
    proc = subprocess.run(
        [sys.executable, "-c", hide_torch, *args, "--backend", "torch"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "needs PyTorch: pip install 'crowdsight[gpu]'" in errors[0]
    assert not (tmp_path / "out").exists()
