"""The floor people stand on, from their boxes: where heads can be, and what fusion drops."""

from __future__ import annotations

import numpy as np
import pytest

from crowdsight.config.pipeline import PipelineSettings
from crowdsight.core.types import CLASS_NAME, DensityMap, Detections, Frame
from crowdsight.perception.fusion import RELIABLE_HEIGHT_PX, fuse_counts, fused_density
from crowdsight.perception.perspective import (
    HEAD_OFFSET,
    GroundPlane,
    GroundPlaneEstimate,
    fit_ground_plane,
)
from crowdsight.pipeline.camera import CameraPipeline


def floor_boxes(
    horizon: float, k: float, heights: list[float], rng: np.random.Generator, jitter: float = 0.03
) -> np.ndarray:
    """Person boxes of the given heights standing on a floor (head at horizon + (k-1)·h)."""
    out = []
    for i, h in enumerate(heights):
        h *= 1 + rng.uniform(-jitter, jitter)  # people are not all 1.7 m
        head = horizon + (k - 1) * h
        top = head - HEAD_OFFSET * h
        out.append([30.0 * i, top, 30.0 * i + 0.4 * h, top + h])
    return np.array(out, np.float32)


def dets(xyxy: np.ndarray) -> Detections:
    n = len(xyxy)
    return Detections(
        xyxy=np.asarray(xyxy, np.float32),
        class_id=np.zeros(n, int),
        confidence=np.ones(n, np.float32),
        data={CLASS_NAME: np.array(["person"] * n)},
    )


@pytest.mark.parametrize("k", [1.0, 1.6, 3.0])
def test_fit_recovers_horizon_and_camera_height(k: float) -> None:
    rng = np.random.default_rng(0)
    heights = list(np.linspace(40, 300, 20))
    plane = fit_ground_plane(floor_boxes(200.0, k, heights, rng))
    assert plane is not None
    assert plane.horizon == pytest.approx(200.0, abs=6.0)
    assert plane.k == pytest.approx(k, abs=0.08)
    assert plane.inliers >= 0.9 and plane.n_boxes == 20


def test_boxes_that_agree_on_no_floor_give_none() -> None:
    rng = np.random.default_rng(1)
    # A crowd seen from above: partial boxes anywhere, heights unrelated to rows.
    tops = rng.uniform(0, 600, 40)
    hs = rng.uniform(30, 150, 40)
    boxes = np.stack([tops * 0, tops, tops * 0 + 40, tops + hs], axis=1)
    assert fit_ground_plane(boxes) is None
    # Too few people to believe any line.
    assert fit_ground_plane(floor_boxes(200.0, 1.0, [50, 80, 120, 200], rng)) is None


def test_head_band_follows_the_geometry() -> None:
    # Eye-level camera: far heads on the horizon row; a 1.95 m person 144 px tall has the
    # head 1.95/1.7 - 1 of 144 px above it; a 0.85 m child's head one full height below.
    lo, hi = GroundPlane(300.0, 1.0, 1.0, 10).head_band(144.0)
    assert lo == pytest.approx(300 + (1.7 / 1.95 - 1) * 144)
    assert hi == pytest.approx(300 + (1.7 / 0.85 - 1) * 144)
    # A high camera: nobody's head above the horizon.
    lo, hi = GroundPlane(-50.0, 4.0, 1.0, 10).head_band(144.0)
    assert lo == -50.0 and hi == pytest.approx(-50 + (4 * 2 - 1) * 144)


def test_fusion_drops_density_where_no_head_can_be() -> None:
    # 1920×1080 street at eye level (k = 1, horizon at row 450): 20 people on the floor.
    rng = np.random.default_rng(2)
    boxes = floor_boxes(450.0, 1.0, list(np.linspace(50, 130, 20)), rng)
    d = np.zeros((135, 240), np.float32)  # 8 px cells
    d[10:40, 100:200] = 60.0 / (30 * 100)  # "crowd" in the tree tops: 60 false people
    d[54:58, 0:50] = 4.0 / (4 * 50)  # 4 far people on the horizon rows, missed by the detector
    d[110:135, :] = 10.0 / (25 * 240)  # pavement texture near the camera
    dm = DensityMap(d, (1920, 1080))
    c = fuse_counts(dm, dets(boxes))
    assert c.horizon_px == pytest.approx(450.0, abs=8.0)
    # Boxes are small (< reliable): counted by density — here the map has no mass under them,
    # so the fused count is the far people only.
    assert c.fused == pytest.approx(4.0, abs=0.2)
    assert fuse_counts(dm, dets(boxes), ground=None).fused == pytest.approx(74.0, abs=0.2)
    shown = fused_density(dm, dets(boxes))
    assert shown.density[10:40].sum() == 0.0 and shown.count == pytest.approx(c.fused, abs=1e-3)
    # A near person (600 px tall, head on the horizon row) counts one by detection.
    near = np.array([[900, 402, 1140, 1002]], np.float32)
    assert RELIABLE_HEIGHT_PX < 600
    assert fuse_counts(dm, dets(np.concatenate([boxes, near]))).fused == pytest.approx(5.0, 0.05)
    # A head seen where the floor says none can be (a balcony): the floor is not believed.
    balcony = np.array([[100, 100, 140, 200]], np.float32)
    assert fuse_counts(dm, dets(np.concatenate([boxes, balcony]))).horizon_px is None


def test_the_band_is_used_only_for_eye_level_cameras() -> None:
    # From 3 person heights up, the horizon is extrapolated: no band, the density stays.
    rng = np.random.default_rng(5)
    boxes = floor_boxes(100.0, 3.0, list(np.linspace(40, 130, 20)), rng)
    plane = fit_ground_plane(boxes)
    assert plane is not None and not plane.eye_level
    dm = DensityMap(np.full((50, 50), 0.01, np.float32), (400, 400))
    c = fuse_counts(dm, dets(boxes))
    assert c.horizon_px is None and c.fused == pytest.approx(
        fuse_counts(dm, dets(boxes), ground=None).fused
    )


def test_estimate_pools_frames_refits_each_second_and_resets() -> None:
    rng = np.random.default_rng(3)
    est = GroundPlaneEstimate(every_s=1.0)
    frames = [floor_boxes(300.0, 1.5, list(rng.uniform(40, 200, 3)), rng) for _ in range(6)]
    # Three people per frame: no single frame is enough; pooled frames are.
    assert fit_ground_plane(frames[0]) is None
    planes = [est.observe(f, ts_s=0.5 * i) for i, f in enumerate(frames)]
    assert planes[0] is None and planes[-1] is not None
    assert planes[-1].horizon == pytest.approx(300.0, abs=10.0)
    est.reset()
    assert est.plane is None


def test_pipeline_fuses_with_the_floor_of_its_recent_frames() -> None:
    rng = np.random.default_rng(4)
    boxes = floor_boxes(240.0, 1.0, list(np.linspace(30, 120, 12)), rng)

    class Boxes:
        """Three of the twelve people per frame: one frame is too few to fit a floor."""

        def __init__(self) -> None:
            self.n = 0

        def detect(self, frame: Frame) -> Detections:
            self.n += 1
            i = 3 * ((self.n - 1) % 4)
            return dets(boxes[i : i + 3])

    class SkyDensity:
        """10 people of texture in the top rows, nothing else."""

        def estimate(self, image: np.ndarray, roi_mask: object = None) -> DensityMap:
            h, w = image.shape[:2]
            cells = np.zeros((h // 8, w // 8), np.float32)
            cells[0:5] = 10.0 / cells[0:5].size
            return DensityMap(cells, (w, h))

    p = CameraPipeline(
        "cam",
        PipelineSettings(density_every_n=1, describe=False, density_scale=1.0),
        density_estimator=SkyDensity(),
        detector=Boxes(),
        tracker=None,
    )
    p.tracker = None
    frames = [Frame("cam", i, i / 2.0, np.zeros((480, 640, 3), np.uint8)) for i in range(4)]
    counts = [p.process(f).metrics.counts for f in frames]
    # Before a second of boxes, no floor: the sky's texture counts. Then (9 pooled boxes at
    # 1 s) the floor is fitted and the sky dropped.
    assert [c["count_fused"] for c in counts] == pytest.approx([10.0, 10.0, 0.0, 0.0], abs=0.01)
