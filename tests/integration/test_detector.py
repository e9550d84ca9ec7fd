"""The bundled people detector on real MOT17 frames (needs shared data + installed model).

Bands were measured with this code (see `crowdsight eval detection`) and set a few points
below: AP50 over the 12 mot17_mini frames is 0.144 plain and 0.478 with sliced inference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdsight.cli.eval_detection import evaluate_mot, iou_matrix, load_mot_gt
from crowdsight.core.types import CLASS_NAME, Frame
from crowdsight.sources.files import read_image
from tests.conftest import require_model

pytestmark = [pytest.mark.data, pytest.mark.models]

AP50_PLAIN_MIN = 0.12
AP50_SLICED_MIN = 0.42


@pytest.fixture(scope="module")
def mot_root(shared_data: Path) -> Path:
    root = shared_data / "mot17_mini"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    require_model("people-ssdlite")
    return root


def test_finds_people_on_a_mot17_frame(mot_root: Path) -> None:
    from crowdsight.perception.detector import SSDLitePeopleDetector

    seq = mot_root / "MOT17-02-FRCNN"
    image = read_image(seq / "img1" / "000001.jpg")
    dets = SSDLitePeopleDetector(conf_threshold=0.5).detect(Frame("mot", 0, 0.0, image))
    assert len(dets) >= 3
    assert set(dets.data[CLASS_NAME].tolist()) == {"person"}
    gt = load_mot_gt(seq / "gt" / "gt.txt")[1]
    people = np.concatenate([gt.positives, gt.ignore])
    best = iou_matrix(dets.xyxy.astype(np.float32), people).max(axis=1)
    assert np.sum(best >= 0.5) >= 3  # confident boxes sit on annotated people...
    assert np.all(best >= 0.25)  # ...and none is off in the background


@pytest.mark.parametrize(("sliced", "band"), [(False, AP50_PLAIN_MIN), (True, AP50_SLICED_MIN)])
def test_ap50_on_mot17_mini_above_band(mot_root: Path, sliced: bool, band: float) -> None:
    from crowdsight.perception.detector import SSDLitePeopleDetector
    from crowdsight.perception.slicing import SliceSettings

    det = SSDLitePeopleDetector(conf_threshold=0.05, slicing=SliceSettings() if sliced else None)
    ap, n_frames, n_gt = evaluate_mot(det.detect, mot_root)
    assert n_frames == 12 and n_gt > 400
    assert ap >= band


class _Counting:
    """A runtime wrapper that counts model calls and the rows in each."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.inputs = inner.inputs  # type: ignore[attr-defined]
        self.outputs = inner.outputs  # type: ignore[attr-defined]
        self.rows: list[int] = []

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.rows.append(int(inputs["image"].shape[0]))
        return self.inner.run(inputs)  # type: ignore[attr-defined, no-any-return]


def test_a_frames_tiles_run_as_one_batch_with_the_same_boxes(mot_root: Path) -> None:
    """Sliced detection on a runtime that takes a batch sends the frame's tiles (and the whole
    frame) in one call and finds exactly what one call per tile finds; on the installed graph
    (batch fixed to 1) it still runs, one call per tile."""
    from crowdsight.config.runtime import RuntimeConfig
    from crowdsight.perception.detector import SSDLitePeopleDetector
    from crowdsight.perception.slicing import SliceSettings

    frame = Frame("mot", 0, 0.0, read_image(mot_root / "MOT17-04-FRCNN" / "img1" / "000001.jpg"))
    found = {}
    for dynamic in (False, True):
        det = SSDLitePeopleDetector(
            conf_threshold=0.3,
            slicing=SliceSettings(),
            runtime=RuntimeConfig(threads=1, dynamic_batch=dynamic),
        )
        counting = _Counting(det.runtime)
        det.runtime = counting  # type: ignore[assignment]
        found[dynamic] = det.detect(frame)
        n_images = sum(counting.rows)
        assert n_images > 4  # 1080p: several tiles and the whole frame
        assert counting.rows == ([n_images] if dynamic else [1] * n_images)
    assert len(found[True]) >= 10
    np.testing.assert_allclose(found[True].xyxy, found[False].xyxy, atol=1e-3)
    np.testing.assert_allclose(found[True].confidence, found[False].confidence, atol=1e-4)
