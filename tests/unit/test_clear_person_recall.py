"""Clear-person recall: clearly visible pedestrians matched one-to-one by operating boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crowdsight.cli.eval_detection import ClearRecall, FrameGT, load_mot_gt


def _gt(clear: list[list[float]]) -> FrameGT:
    boxes = np.asarray(clear, np.float32).reshape(-1, 4)
    return FrameGT(boxes, np.zeros((0, 4), np.float32), boxes)


def test_only_boxes_at_the_operating_threshold_count() -> None:
    acc = ClearRecall(conf_threshold=0.35)
    gt = _gt([[0, 0, 40, 120], [200, 0, 240, 120]])
    boxes = np.asarray([[1, 1, 41, 119], [201, 0, 240, 121]], np.float32)
    acc.add(boxes, np.asarray([0.9, 0.2], np.float32), gt)
    assert (acc.found, acc.total) == (1, 2)
    assert acc.recall == 0.5


def test_one_box_around_two_people_finds_only_one() -> None:
    acc = ClearRecall(conf_threshold=0.35)
    gt = _gt([[0, 0, 40, 120], [30, 0, 70, 120]])
    acc.add(np.asarray([[2, 0, 60, 120]], np.float32), np.asarray([0.9], np.float32), gt)
    assert (acc.found, acc.total) == (1, 2)


def test_clear_pedestrians_are_visible_and_tall(tmp_path: Path) -> None:
    gt_file = tmp_path / "gt.txt"
    rows = [
        "1,1,10,10,40,120,1,1,0.95",  # clear
        "1,2,100,10,40,120,1,1,0.5",  # half occluded
        "1,3,200,10,20,60,1,1,1.0",  # too small
        "1,4,300,10,40,120,0,7,1.0",  # static person: ignored, never clear
    ]
    gt_file.write_text("\n".join(rows) + "\n")
    frame = load_mot_gt(gt_file)[1]
    assert len(frame.positives) == 3
    np.testing.assert_allclose(frame.clear, [[10, 10, 50, 130]])
