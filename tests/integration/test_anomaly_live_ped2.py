"""The camera pipeline's live anomaly path on real footage: an operator's learning request
reaches the camera through its model folder, the camera learns normal from a Ped2 training
clip, then, playing Ped2 test clip 04, raises an `anomaly` event naming the service cart that
drives in (an object class the normal footage never had), with the cart's box on the
redacted snapshot."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdsight.analytics.object_anomaly_live import ModelFiles
from crowdsight.config.pipeline import PipelineSettings
from crowdsight.core.events import Anomaly
from crowdsight.core.types import Frame
from crowdsight.pipeline.annotate import Annotator
from crowdsight.pipeline.camera import CameraPipeline, FrameResult
from tests.conftest import require_model

pytestmark = [pytest.mark.data, pytest.mark.models]
FPS = 10.0


def _frames(folder: Path, first_index: int, limit: int | None = None) -> list[Frame]:
    paths = sorted(folder.glob("*.jpg"))[:limit]
    if not paths:
        pytest.skip(f"no frames in {folder}")
    out = []
    for i, p in enumerate(paths, start=first_index):
        image = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
        out.append(Frame("ped2", i, i / FPS, np.ascontiguousarray(image)))
    return out


def test_learned_camera_names_the_cart_with_its_box(shared_data: Path, tmp_path: Path) -> None:
    require_model("nanodet")
    train = _frames(shared_data / "ucsd_ped2_train" / "frames" / "01", 0)
    test = _frames(shared_data / "ucsd_ped2_test" / "frames" / "04", len(train), limit=60)
    files = ModelFiles(tmp_path / "ped2")
    pipe = CameraPipeline(
        "ped2", PipelineSettings(density=False, describe=False), anomaly_dir=files.folder
    )
    assert pipe.anomaly is not None and pipe.anomaly.objects is not None
    files.request_learning((len(train) - 2) / FPS)  # what POST .../anomaly/learn leaves
    for frame in train:
        pipe.process(frame)
    state = files.read_state()
    assert state is not None and state.state == "ready", state
    assert files.model.exists() and files.pending_request() is None

    opened: list[tuple[Anomaly, FrameResult]] = []
    for frame in test:
        result = pipe.process(frame)
        opened += [(e, result) for e in result.events if isinstance(e, Anomaly) and e.is_open]
    assert opened, f"no anomaly event; last score {pipe.anomaly.last_score:.2f}"
    event, result = opened[0]
    assert event.method == "objects" and event.xyxy is not None
    assert event.object_class in ("car", "truck", "bus", "motion"), event.reason
    assert "normal" in event.reason
    x0, _, x1, _ = event.xyxy
    assert (x0 + x1) / 2 > 240  # the cart drives in on the right of the frame
    snapshot = Annotator(heatmap=False).annotate(result, redact=True)
    x0i, y0i = round(x0), round(event.xyxy[1])
    red = snapshot[y0i : y0i + 3, x0i : x0i + 3].reshape(-1, 3)
    assert ((red[:, 0] > 200) & (red[:, 1] < 80)).any()  # the box, drawn in red
