"""Redaction masks and modes on synthetic frames; BlazeFace decoding on a real frame."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from crowdsight.core.types import CLASS_NAME, DensityMap
from crowdsight.privacy.faces import ssd_anchors
from crowdsight.privacy.redaction import (
    MotionHeads,
    Redactor,
    apply_mode,
    density_mask,
    head_boxes,
)


def _dets(boxes: list[list[float]], names: list[str]) -> sv.Detections:
    return sv.Detections(
        xyxy=np.array(boxes, np.float32),
        confidence=np.ones(len(boxes), np.float32),
        class_id=np.zeros(len(boxes), int),
        data={CLASS_NAME: np.array(names)},
    )


def _textured(h: int = 240, w: int = 320) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_head_box_is_the_narrow_top_of_person_boxes_only() -> None:
    heads = head_boxes(_dets([[100, 50, 160, 250], [0, 0, 50, 50]], ["person", "car"]))
    assert heads.shape == (1, 4)
    x0, y0, x1, y1 = heads[0]
    assert y0 < 50 < y1 <= 50 + 0.25 * 200  # top of the box, not the body
    assert 100 <= x0 < x1 <= 160 and (x1 - x0) < 60 + 1e-3


def test_density_blob_is_masked_and_border_artefacts_are_not() -> None:
    d = np.zeros((30, 40), np.float32)
    d[14:17, 19:22] = 1 / 9  # one person, 3×3 cells
    d[:, 0] = 0.5  # border artefact column
    mask = density_mask(DensityMap(d, (320, 240)), 6.5e-5, (240, 320))
    assert mask[124, 164]  # centre of the blob
    assert not mask[20, 300]  # empty floor
    assert not mask[:, :4].any()  # border ring ignored


@pytest.mark.parametrize("mode", ["blur", "pixelate", "mask"])
def test_modes_change_only_masked_pixels(mode: str) -> None:
    img = _textured()
    mask = np.zeros(img.shape[:2], bool)
    mask[40:80, 60:120] = True
    out = apply_mode(img, mask, mode, 6)  # type: ignore[arg-type]
    assert np.array_equal(out[~mask], img[~mask])
    changed = np.abs(out[mask].astype(int) - img[mask].astype(int)).mean()
    assert changed > 20  # random texture is destroyed, whatever the mode
    assert not np.shares_memory(out, img)


def test_redactor_hides_person_heads_by_default_mode() -> None:
    img = _textured()
    red = Redactor(faces=None, motion=False)
    out, mask = red.redact(img, _dets([[100, 40, 140, 200]], ["person"]), None)
    assert mask[45, 120] and not mask[150, 120]  # head hidden, legs not
    assert not np.array_equal(out[45, 115:125], img[45, 115:125])
    assert mask.mean() < 0.05


def test_nothing_to_hide_returns_an_equal_copy() -> None:
    img = _textured()
    out, mask = Redactor(faces=None, motion=False).redact(img, None, None)
    assert not mask.any() and np.array_equal(out, img)


def test_motion_heads_warm_up_then_top_of_moving_blob() -> None:
    mh = MotionHeads(warmup=5)
    bg = np.full((120, 160, 3), 100, np.uint8)
    for _ in range(20):
        assert not mh.update(bg).any()
    frame = bg.copy()
    frame[30:90, 70:90] = 250  # a "person" appears
    mask = mh.update(frame)
    assert mask[32, 80] and not mask[85, 80]
    mh.reset()
    assert not mh.update(frame).any()  # warming up again


def test_anchor_counts_match_mediapipe() -> None:
    assert ssd_anchors(128, [8, 16, 16, 16]).shape == (896, 2)
    assert ssd_anchors(192, [4], interpolated_ratio=0.0).shape == (2304, 2)
