"""Box labels: full "class #id" on ordinary frames, "#id" for people on small ones."""

from __future__ import annotations

import numpy as np
import supervision as sv

from crowdsight.core.types import CLASS_NAME
from crowdsight.pipeline.annotate import SHORT_LABELS_BELOW_PX, _labels


def tracked(names: list[str], ids: list[int]) -> sv.Detections:
    n = len(names)
    return sv.Detections(
        xyxy=np.tile(np.array([[10, 10, 40, 90]], np.float32), (n, 1)),
        class_id=np.zeros(n, int),
        tracker_id=np.array(ids),
        data={CLASS_NAME: np.array(names)},
    )


def test_people_get_their_number_only_on_small_frames_other_classes_keep_their_name() -> None:
    dets = tracked(["person", "car", "person"], [12, 3, 40])
    assert _labels(dets) == ["person #12", "car #3", "person #40"]
    assert _labels(dets, short_people=True) == ["#12", "car #3", "#40"]
    assert 360 < SHORT_LABELS_BELOW_PX <= 640  # Ped2-sized CCTV is small, Mall-sized is not


def test_untracked_boxes_are_labelled_by_class() -> None:
    dets = tracked(["person"], [1])
    dets.tracker_id = None
    assert _labels(dets, short_people=True) == ["person"]
