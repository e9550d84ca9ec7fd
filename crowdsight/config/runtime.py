"""Which backend runs the models, and how: a typed choice read once where settings enter.

`crowdsight.models.runtime.load_runtime` takes this config; the environment variables
``CROWDSIGHT_PROVIDERS`` (comma-separated execution providers, best first) and
``CROWDSIGHT_ORT_SPIN`` (``1``: let idle ONNX Runtime threads spin) are read only by
`RuntimeConfig.from_env`, which only the edges call (CLI commands and the serve config loader).

Example:
    >>> cfg = RuntimeConfig.from_env({"CROWDSIGHT_PROVIDERS": "CPUExecutionProvider"})
    >>> cfg.backend, cfg.providers
    ('onnxruntime', ('CPUExecutionProvider',))
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Model runtimes: ONNX Runtime, or the same ONNX graphs through PyTorch.
Backend = Literal["onnxruntime", "torch"]

#: ONNX Runtime execution providers tried by default, best first (those missing are skipped).
DEFAULT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


class RuntimeConfig(BaseModel):
    """Which backend runs the models and how (a boundary object; read once, passed down)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    backend: Backend = Field(
        "onnxruntime",
        description="Model runtime: 'onnxruntime' (default; CPU, or CUDA/TensorRT providers "
        "when installed) or 'torch' (the same ONNX graphs through PyTorch, fp16 on CUDA; "
        "needs the 'gpu' extra).",
    )
    device: str = Field(
        "auto",
        description="torch device: 'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'. "
        "ONNX Runtime picks its device through `providers`.",
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="Intra-op threads of one model (None: the backend's default, all cores).",
    )
    providers: tuple[str, ...] = Field(
        DEFAULT_PROVIDERS,
        description="ONNX Runtime execution providers to try, best first; those the "
        "installed onnxruntime lacks are skipped (CPU when none is left).",
    )
    spin: bool = Field(
        False,
        description="Let idle ONNX Runtime threads spin. Off: they sleep between inferences, "
        "so decoding, tracking and other cameras' sessions get the cores.",
    )
    dynamic_batch: bool = Field(
        False,
        description="Free the first axis of ONNX inputs/outputs so batches of any size run "
        "(cross-camera batching; the exporters fix it to 1). Reads the graph with onnx.",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **fields: Any) -> RuntimeConfig:
        """The config with ``CROWDSIGHT_PROVIDERS`` / ``CROWDSIGHT_ORT_SPIN`` applied.

        Args:
            environ: Variables to read (default: the process environment).
            **fields: Other fields to set (``backend``, ``threads``, ...).
        """
        env = os.environ if environ is None else environ
        wanted = env.get("CROWDSIGHT_PROVIDERS", "")
        providers = tuple(p.strip() for p in wanted.split(",") if p.strip())
        if providers:
            fields.setdefault("providers", providers)
        if env.get("CROWDSIGHT_ORT_SPIN", "0") == "1":
            fields.setdefault("spin", True)
        return cls(**fields)

    def with_threads(self, threads: int | None) -> RuntimeConfig:
        """This config with another thread count (None keeps this one's)."""
        return self if threads is None else self.model_copy(update={"threads": threads})


#: Where a shared model's batching service runs: ``thread`` beside the camera threads,
#: ``process`` in its own inference process per device, ``auto`` (process on a GPU, thread
#: on CPU).
Inference = Literal["auto", "thread", "process"]


class SharedInferenceConfig(BaseModel):
    """How models shared by many cameras batch their calls (a boundary object).

    Defaults: ``inference="auto"`` keeps the batching thread on CPU, where the models
    themselves hold the cores and a second process would only add copies; on a GPU the
    batching thread starves for Python's GIL beside the camera threads (H200: batches
    stayed small and the GPU 4 % busy at 100 streams), so there it gets its own process.
    The slot size fits a request of 300×300 detector tiles with room to spare (1.03 MiB per
    tile as float32); full frames for the density model (1080p: 24 MiB) get their own,
    larger slots, 8 per caller process: the density batch is at most 4 frames, so 8 keeps
    one batch running and one gathering.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    inference: Inference = Field(
        "auto",
        description="Where shared models run: 'thread' (a batching thread beside the "
        "cameras), 'process' (an inference server process per device, frames through "
        "shared memory) or 'auto' (process on a GPU, thread on CPU).",
    )
    max_batch: int = Field(32, ge=1, description="Most images per model call.")
    max_wait_ms: float = Field(
        5.0, ge=0, description="How long a model call waits for more cameras."
    )
    slots: int = Field(
        64, ge=1, description="Requests per caller process in shared memory at once."
    )
    slot_mib: float = Field(
        4.0, gt=0, description="Size of one shared-memory slot (larger requests go pickled)."
    )
    frame_slots: int = Field(
        8,
        ge=0,
        description="Full-frame slots per caller process (density maps; sized to the frame). "
        "More concurrent frames than this go pickled through the pipe.",
    )

    def placement(self, accelerated: bool) -> Literal["thread", "process"]:
        """``thread`` or ``process``: ``auto`` resolved for a GPU (True) or CPU (False)."""
        if self.inference == "auto":
            return "process" if accelerated else "thread"
        return self.inference
