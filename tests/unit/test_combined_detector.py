"""`CombinedDetector`: two detectors' boxes pooled, duplicates merged per class."""

from __future__ import annotations

import numpy as np

from crowdsight.core.types import CLASS_NAME, Detections, Frame
from crowdsight.perception.detector import CombinedDetector


class Fixed:
    def __init__(self, boxes: list[list[float]], names: list[str], conf: float) -> None:
        self.d = Detections(
            xyxy=np.array(boxes, np.float32).reshape(-1, 4),
            confidence=np.full(len(boxes), conf, np.float32),
            class_id=np.zeros(len(boxes), int),
            data={CLASS_NAME: np.array(names)},
        )

    def detect(self, frame: Frame) -> Detections:
        return self.d


FRAME = Frame("cam", 0, 0.0, np.zeros((100, 200, 3), np.uint8))


def test_same_person_once_and_each_ones_finds_kept() -> None:
    a = Fixed([[10, 10, 30, 60], [100, 10, 120, 60]], ["person", "person"], 0.8)
    b = Fixed(
        [[11, 11, 31, 61], [150, 40, 190, 90], [12, 30, 30, 50]], ["person", "car", "backpack"], 0.6
    )
    out = CombinedDetector([a, b]).detect(FRAME)
    names = sorted(out.data[CLASS_NAME].tolist())
    assert names == ["backpack", "car", "person", "person"]  # the backpack is not merged away
    person = out.xyxy[out.data[CLASS_NAME] == "person"]
    assert len(person) == 2
    assert out.confidence[out.data[CLASS_NAME] == "person"].max() == np.float32(0.8)


def test_nothing_found_is_empty_with_names() -> None:
    out = CombinedDetector([Fixed([], [], 0.5), Fixed([], [], 0.5)]).detect(FRAME)
    assert len(out) == 0 and CLASS_NAME in out.data


def test_tracker_thresholds_are_the_most_permissive_parts() -> None:
    a, b = Fixed([], [], 0.5), Fixed([], [], 0.5)
    b.track_thresholds = (0.5, 0.35)  # type: ignore[attr-defined]
    assert CombinedDetector([a, b]).track_thresholds == (0.5, 0.35)


def test_pipeline_tracker_takes_the_detectors_score_scale() -> None:
    from crowdsight.config.pipeline import PipelineSettings
    from crowdsight.pipeline.camera import CameraPipeline

    det = Fixed([], [], 0.5)
    det.track_thresholds = (0.5, 0.35)  # type: ignore[attr-defined]
    p = CameraPipeline("cam", PipelineSettings(density=False, describe=False), detector=det)
    assert p.tracker.track_activation_threshold == 0.5  # type: ignore[union-attr]
    assert p.tracker.high_conf_det_threshold == 0.35  # type: ignore[union-attr]
    plain = CameraPipeline(
        "cam", PipelineSettings(density=False, describe=False), detector=Fixed([], [], 0.5)
    )
    assert plain.tracker.track_activation_threshold == 0.7  # type: ignore[union-attr]
