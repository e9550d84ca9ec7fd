"""ONNX Runtime sessions with sensible CPU defaults; CUDA/TensorRT when present."""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort

from crowdsight.core.errors import ModelError


def available_providers() -> list[str]:
    """Execution providers to try, best first, among those this onnxruntime has."""
    have = set(ort.get_available_providers())
    order = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    wanted = os.environ.get("CROWDSIGHT_PROVIDERS")
    if wanted:
        order = [p.strip() for p in wanted.split(",") if p.strip()]
    return [p for p in order if p in have] or ["CPUExecutionProvider"]


def uses_accelerator() -> bool:
    """Whether sessions run on a GPU provider (CUDA or TensorRT) rather than the CPU."""
    return available_providers()[0] != "CPUExecutionProvider"


def make_session(path: Path, *, threads: int | None = None) -> ort.InferenceSession:
    """An inference session for an ONNX file.

    Args:
        path: ONNX model file.
        threads: Intra-op threads (None: ONNX Runtime's default, all physical cores).
    """
    if not path.exists():
        raise ModelError(f"model file {path} not found; run `crowdsight models install`")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        opts.intra_op_num_threads = threads
    if os.environ.get("CROWDSIGHT_ORT_SPIN", "0") != "1":
        # Idle intra-op threads sleep instead of spinning, so decoding, tracking and the
        # other cameras' sessions get the cores between inferences.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=available_providers())
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"cannot load {path}: {exc}") from exc
