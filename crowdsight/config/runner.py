"""How the camera runner runs and supervises workers (``serve``'s config file and flags).

`crowdsight.pipeline.specs.spec_for` turns a camera record plus these settings into the
`WorkerSpec` a worker process is started with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from crowdsight.config.pipeline import PipelineSettings, live_defaults


class RunnerSettings(BaseModel):
    """How the local runner runs and supervises camera workers."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    realtime: bool = Field(
        True,
        description="Play video files and folders at their frame rate, stamped with the wall "
        "clock, like cameras. Off: as fast as possible with video time (tests, batch).",
    )
    pipeline: PipelineSettings = Field(
        default_factory=live_defaults,
        description="Pipeline stages for every camera; a camera's detect_every and "
        "density_every_s override the cadences.",
    )
    start_method: Literal["spawn", "forkserver"] = Field(
        "spawn",
        description="How worker processes start: 'spawn' (a fresh interpreter each time; "
        "safest) or 'forkserver' (forked from a clean server process that pre-imported the "
        "pipeline; restarts in a fraction of the time). The server is started once per "
        "process, so later changes to environment variables do not reach its workers.",
    )
    drop_late: bool = Field(
        True,
        description="When a camera's pipeline is slower than the camera, skip the frames it "
        "cannot keep up with (newest frame first) instead of falling ever further behind.",
    )
    folder_fps: float = Field(
        10.0, gt=0, description="Frame rate at which folders of frames are played."
    )
    pipeline_factory: str | None = Field(
        None,
        description="Advanced: 'module:callable' building each camera's pipeline instead of "
        "the standard one, e.g. 'crowdsight.pipeline.worker:tick_pipeline' (model-free "
        "events from a fixed rule, for smoke tests).",
    )
    stuck_after_s: float = Field(
        30.0, gt=0, description="A worker without a heartbeat for this long is killed."
    )
    startup_grace_s: float = Field(
        120.0, gt=0, description="Heartbeat allowance while a worker loads its models."
    )
    restart_initial_s: float = Field(
        1.0, ge=0, description="Wait before restarting a worker that died (doubles per crash)."
    )
    restart_max_s: float = Field(60.0, ge=0, description="Longest wait between restarts.")
    stable_after_s: float = Field(
        60.0, gt=0, description="A worker alive this long resets the crash back-off."
    )
    stop_timeout_s: float = Field(
        10.0, gt=0, description="On shutdown, workers get this long to finish before a kill."
    )
    reconnect_initial_s: float = Field(
        0.5, gt=0, description="First wait before reconnecting a lost stream."
    )
    reconnect_max_s: float = Field(30.0, gt=0, description="Longest wait between reconnects.")
    jpeg_every_s: float = Field(
        0.5, ge=0, description="Seconds between live (redacted) JPEGs per camera; 0: none."
    )
    store_retry_max_s: float = Field(
        30.0, gt=0, description="Longest wait between retries of a failed database write."
    )
    descriptions_every_s: float = Field(
        2.0, ge=0, description="Seconds between stored track descriptions per camera; 0: none."
    )
    snapshots: bool = Field(True, description="Store a redacted JPEG with each new event.")
    metrics_every_s: float = Field(
        1.0, ge=0, description="Seconds between stored metric samples per camera."
    )
    anomaly_dir: Path | None = Field(
        None,
        description="Folder of the cameras' learned anomaly models (one sub-folder per "
        "camera: model, learning request, state). `crowdsight serve` uses <data dir>/anomaly "
        "when unset; with Ray, every node must see the same folder. None elsewhere: models "
        "are kept in memory only.",
    )
