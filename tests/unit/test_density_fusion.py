"""Density input scale per camera, fused detection+density counts, MOT ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crowdsight.config.pipeline import PipelineSettings
from crowdsight.core.types import CLASS_NAME, DensityMap, Detections, Frame
from crowdsight.datasets.counting import CountingFormat, iter_items, mot_points
from crowdsight.perception.density import estimate_at_scale
from crowdsight.perception.density_scale import (
    MAX_SCALE,
    MIN_SCALE,
    TARGET_PERSON_PX,
    DensityScale,
    heights_from_calibration,
    scale_for_heights,
)
from crowdsight.perception.fusion import (
    RELIABLE_HEIGHT_PX,
    covered_cells,
    fuse_counts,
    fused_density,
)
from crowdsight.pipeline.camera import CameraPipeline


class ShapeDensity:
    """Density of one person per 64×64 px of input: records the input sizes it saw."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def estimate(self, image: Any, roi_mask: Any = None) -> DensityMap:
        h, w = image.shape[:2]
        self.shapes.append((h, w))
        cells = np.full((-(-h // 8), -(-w // 8)), 1 / 64, np.float32)
        return DensityMap(cells, (w, h))


class BoxDetector:
    """Always the same person boxes."""

    def __init__(self, xyxy: list[list[float]]) -> None:
        self.xyxy = np.array(xyxy, np.float32)

    def detect(self, frame: Frame) -> Detections:
        n = len(self.xyxy)
        return Detections(
            xyxy=self.xyxy,
            class_id=np.zeros(n, int),
            confidence=np.ones(n, np.float32),
            data={CLASS_NAME: np.array(["person"] * n)},
        )


def dets(xyxy: list[list[float]], names: list[str] | None = None) -> Detections:
    n = len(xyxy)
    data = {CLASS_NAME: np.array(names or ["person"] * n)}
    return Detections(xyxy=np.array(xyxy, np.float32), class_id=np.zeros(n, int), data=data)


def test_scale_brings_median_person_to_target_and_is_clipped() -> None:
    assert scale_for_heights([2 * TARGET_PERSON_PX] * 8) == pytest.approx(0.5)
    assert scale_for_heights([TARGET_PERSON_PX / 2] * 8) == MAX_SCALE
    assert scale_for_heights([100 * TARGET_PERSON_PX] * 8) == MIN_SCALE
    assert scale_for_heights([2 * TARGET_PERSON_PX] * 7) is None
    # The median, so a few huge false boxes do not move it.
    hs = [2 * TARGET_PERSON_PX] * 9 + [5000.0] * 4
    assert scale_for_heights(hs) == pytest.approx(0.5)


def test_density_scale_learns_after_warmup_then_moves_slowly() -> None:
    ds = DensityScale(warmup_s=5.0, every_s=60.0, rate=0.2)
    assert ds.status.source == "default" and ds.scale == 1.0
    for t in range(6):
        ds.observe([2 * TARGET_PERSON_PX] * 3, float(t))
    assert ds.status.source == "boxes"
    assert ds.scale == pytest.approx(0.5, abs=1e-3)
    assert ds.status.n_boxes == 18
    assert ds.status.describe() == "density scale 0.5, from 18 person boxes"
    # The camera zooms in: people twice as tall. One re-estimate moves only part of the way.
    for t in range(6, 70):
        ds.observe([4 * TARGET_PERSON_PX] * 40, float(t))
    assert 0.25 < ds.scale < 0.5
    ds.reset()
    assert ds.status.source == "default"


def test_configured_scale_overrides_boxes() -> None:
    ds = DensityScale(0.3)
    ds.observe([TARGET_PERSON_PX] * 100, 10.0)
    assert ds.status.scale == 0.3 and ds.status.source == "config"
    with pytest.raises(ValueError):
        DensityScale(0.0)


def test_calibration_gives_person_height() -> None:
    # 1 px = 1 cm on the floor: a 1.7 m person spans 170 px.
    hm = np.diag([0.01, 0.01, 1.0])
    assert heights_from_calibration(hm, [[10, 10], [300, 200]]) == pytest.approx([170, 170])
    ds = DensityScale()
    ds.set_calibration([340.0])
    assert ds.status.source == "calibration"
    assert ds.scale == pytest.approx(TARGET_PERSON_PX / 340.0, abs=1e-3)


def test_estimate_at_scale_resizes_and_keeps_frame_coordinates() -> None:
    est = ShapeDensity()
    image = np.zeros((480, 640, 3), np.uint8)
    roi = np.ones((480, 640), bool)
    dm = estimate_at_scale(est, image, 0.5, roi)
    assert est.shapes == [(240, 320)]
    assert dm.density.shape == (30, 40)
    assert dm.resolution_wh == (640, 480)
    assert dm.scale_xy == (16.0, 16.0)
    with pytest.raises(ValueError):
        estimate_at_scale(est, image, 0.0)


def test_fusion_counts_large_people_once_and_small_ones_by_density() -> None:
    # 20×20 cells of 8 px (160×160 frame). A large person (box 160 px tall) whose density
    # (1.0) lies inside their box, and a small far person (density 1.0) outside any box.
    d = np.zeros((20, 20), np.float32)
    d[2:4, 2:4] = 0.25  # the large person's head, inside the box
    d[2:4, 16:18] = 0.25  # a small person, not detected
    dm = DensityMap(d, (160, 160))
    big = [[0, 0, 60, RELIABLE_HEIGHT_PX + 10]]
    c = fuse_counts(dm, dets(big))
    assert c.density == pytest.approx(2.0)
    assert c.detection == 1 and c.reliable == 1
    assert c.fused == pytest.approx(2.0)  # not 3: no double count at the seam
    # A small detected box is not reliable: density counts it, the box adds nothing.
    small = [[120, 10, 140, 40]]
    c2 = fuse_counts(dm, dets(small))
    assert c2.reliable == 0 and c2.fused == pytest.approx(2.0)
    # Non-person classes are never counted as people.
    c3 = fuse_counts(dm, dets(big, ["car"]))
    assert c3.detection == 0 and c3.fused == pytest.approx(2.0)
    # Without a density map, the fused count is the detection count.
    assert fuse_counts(None, dets(big + small)).fused == 2


def test_detection_zone_counts_boxes_and_drops_density_where_people_are_large() -> None:
    # A 400×400 frame, 8 px cells. Perspective: people 60 px tall at the top, 250 px at the
    # bottom. Density puts 5 false "people" of texture in the bottom rows (where the camera
    # shows people large) and 3 real small people at the top; 13 boxes, 8 of them large.
    d = np.zeros((50, 50), np.float32)
    d[45:50, 0:10] = 5.0 / 50  # texture mass near the camera, under no box
    d[2:4, 40:50] = 3.0 / 20  # small far people the detector missed
    dm = DensityMap(d, (400, 400))
    boxes = []
    for i, top in enumerate((10, 25, 40, 55, 70)):  # far people, growing downwards
        h = 60 + 0.6 * top
        boxes.append([40.0 * i, top, 40.0 * i + 0.4 * h, top + h])
    for i, top in enumerate((150, 155, 160, 165, 170, 175, 180, 185)):  # near people, tall
        h = 60 + 0.6 * top + 60
        boxes.append([50.0 * i, top, 50.0 * i + 0.4 * h, min(top + h, 400)])
    c = fuse_counts(dm, dets(boxes))
    assert c.zone_rows > 0
    # The bottom rows' texture is dropped; near boxes count one each; far mass still counts.
    assert c.fused == pytest.approx(8 + 3.0, abs=0.3)
    # Per-box fusion alone keeps the texture.
    plain = fuse_counts(dm, dets(boxes), regional=False)
    assert plain.zone_rows == 0 and plain.fused > c.fused + 4
    # Fewer than 8 tall people: the camera does not show people large enough; no zone.
    assert fuse_counts(dm, dets(boxes[:12])).zone_rows == 0
    # The map the heatmap shows and zones count sums to the fused count; no texture is left
    # in the bottom-left corner, and each near person's mass lies inside their box.
    shown = fused_density(dm, dets(boxes))
    assert shown.count == pytest.approx(c.fused, abs=1e-3)
    assert shown.density[45:50, 0:3].sum() == pytest.approx(0.0, abs=1e-6)
    for box in boxes[5:]:
        assert shown.density[covered_cells(shown, [box])].sum() >= 1.0 - 1e-4
    # Nothing replaced: the model's own map, unchanged.
    assert fused_density(dm, dets(boxes[:1])) is dm


def test_detection_zone_stays_where_tall_people_are_shown() -> None:
    # A packed crowd seen from the front (ShanghaiTech-like): the detector finds only 8 near
    # people, all tall and all in the bottom half, at about the same height, so the height
    # line through them says "tall" at every row. The far crowd above them (40 people of
    # density in the top rows) is not the detector's: the zone must not take those rows.
    d = np.zeros((50, 50), np.float32)
    d[0:20, :] = 40.0 / (20 * 50)
    dm = DensityMap(d, (400, 400))
    boxes = [[45.0 * i, 220.0 + 2 * i, 45.0 * i + 40, 400.0] for i in range(8)]
    c = fuse_counts(dm, dets(boxes))
    assert 0 < c.zone_rows <= 50 - 220 // 8 + 1
    assert c.fused == pytest.approx(8 + 40.0, abs=0.5)


def test_fusion_counts_only_boxes_standing_in_the_region_of_interest() -> None:
    d = np.zeros((20, 20), np.float32)
    roi = np.zeros((20, 20), bool)
    roi[:, :10] = True  # the left half of a 160×160 frame is counted
    dm = DensityMap(d, (160, 160), roi_mask=roi)
    tall = RELIABLE_HEIGHT_PX + 10
    inside, outside = [0, 0, 60, tall], [100, 0, 150, tall]
    assert fuse_counts(dm, dets([inside, outside])).fused == 1


def test_covered_cells_uses_cell_centres_in_frame_pixels() -> None:
    dm = DensityMap(np.zeros((10, 10), np.float32), (160, 160))  # 16 px cells
    mask = covered_cells(dm, [[16, 16, 48, 32]])
    assert mask.sum() == 2 and mask[1, 1] and mask[1, 2]


def test_pipeline_learns_scale_from_boxes_and_reports_fused_count() -> None:
    est = ShapeDensity()
    tall = 2 * TARGET_PERSON_PX
    boxes = [[x, 10.0, x + 40.0, 10.0 + tall] for x in range(0, 400, 50)]  # 8 people
    p = CameraPipeline(
        "cam",
        PipelineSettings(density_every_n=1, describe=False),
        density_estimator=est,
        detector=BoxDetector(boxes),
        tracker=None,
    )
    p.tracker = None  # count the raw boxes
    frames = [Frame("cam", i, i / 2.0, np.zeros((480, 640, 3), np.uint8)) for i in range(14)]
    results = [p.process(f) for f in frames]
    assert est.shapes[0] == (480, 640)  # nothing learned yet: native scale
    assert est.shapes[-1] == (240, 320)  # after the warm-up: people brought to the target
    assert p.density_scale.source == "boxes"
    m = results[-1].metrics.counts
    assert m["density_scale"] == pytest.approx(0.5, abs=1e-3)
    assert m["count_detection"] == 8
    assert m["count_density"] == pytest.approx(240 * 320 / 64 / 64, rel=0.02)
    assert m["count_fused"] < m["count_density"] + 8  # the people's own cells are dropped


def test_mot_ground_truth_counts_considered_pedestrians(shared_data: Path) -> None:
    seq = shared_data / "mot17_mini" / "MOT17-04-FRCNN"
    pts = mot_points(seq / "gt" / "gt.txt")
    assert len(pts[1]) == 42  # the "42 visible pedestrians" in frame 1
    items = iter_items(shared_data / "mot17_mini", None, CountingFormat.MOT)
    assert len(items) == 12
    assert [i.gt for i in items[:4]] == [22, 22, 22, 22]
    assert items[4].image.name == "000001.jpg" and items[4].gt == 42


def test_pipeline_seeds_scale_from_ground_calibration() -> None:
    from crowdsight.config.scene import Calibration, SceneConfig

    # Drawn at 1280×720 with 2 px per cm on the floor; the frames are 640×360, i.e. 1 px per
    # cm: a 1.7 m person is 170 px tall there.
    calib = Calibration(
        image_px=[[0, 0], [1000, 0], [1000, 600], [0, 600]],
        ground_m=[[0, 0], [5, 0], [5, 3], [0, 3]],
    )
    scene = SceneConfig(resolution_wh=(1280, 720), calibration=calib)
    est = ShapeDensity()
    p = CameraPipeline(
        "cam",
        PipelineSettings(detect=False, density_every_n=1),
        scene=scene,
        density_estimator=est,
    )
    r = p.process(Frame("cam", 0, 0.0, np.zeros((360, 640, 3), np.uint8)))
    assert p.density_scale.source == "calibration"
    assert r.metrics.counts["density_scale"] == pytest.approx(TARGET_PERSON_PX / 170, abs=2e-3)
    assert est.shapes == [
        (round(360 * TARGET_PERSON_PX / 170), round(640 * TARGET_PERSON_PX / 170))
    ]
