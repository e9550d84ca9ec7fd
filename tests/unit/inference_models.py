"""Tiny models for the inference-server tests (importable by the spawned server process)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from crowdsight.models.spec import TensorSpec


class Doubler:
    """Returns ``[2x, per-row sum]``; a negative input raises, a huge one kills the process."""

    inputs = (TensorSpec("image", (None, 3, None, None), "float32"),)
    outputs = (TensorSpec("doubled", (None, 3, None, None)), TensorSpec("sum", (None,)))

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[Any]:
        x = inputs["image"]
        if float(x.max()) > 1e6:
            os._exit(3)  # a crash of the server process (a CUDA abort, an OOM kill)
        if float(x.min()) < 0:
            raise RuntimeError("negative pixels")
        return [x * 2, x.sum(axis=(1, 2, 3))]


def doubler() -> Doubler:
    return Doubler()


def broken() -> Doubler:
    raise FileNotFoundError("weights.onnx is missing")


class CallCounter:
    """Fixed 3×4×4 input; answers, per row, the size of the batch it ran in and how many
    calls the model had by then (so a test in another process sees the warm-up calls)."""

    inputs = (TensorSpec("image", (1, 3, 4, 4), "float32"),)
    outputs = (TensorSpec("batch", (None,)), TensorSpec("calls", (None,)))

    def __init__(self) -> None:
        self.calls = 0

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[Any]:
        n = int(inputs["image"].shape[0])
        self.calls += 1
        return [np.full(n, n, np.float32), np.full(n, self.calls, np.float32)]


def call_counter() -> CallCounter:
    return CallCounter()
