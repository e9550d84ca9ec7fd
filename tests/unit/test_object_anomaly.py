"""Object-level anomaly model on synthetic objects: what it flags, why, and persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from crowdsight.analytics.object_anomaly import (
    MODEL_VERSION,
    MOTION_CLASS,
    N_DIR_BINS,
    FrameObjects,
    ObjectMotion,
    ObjectNormality,
    clip_objects,
    frame_objects,
    load_clip_objects,
    save_clip_objects,
)

W, H = 360, 240


def _person(
    rng: np.random.Generator, speed_h_s: float, heading: int
) -> tuple[list[float], list[float]]:
    """A walker's box at a random row (perspective height) and its direction histogram."""
    bottom = rng.uniform(100, 230)
    h = 10 + 0.15 * bottom
    x0 = rng.uniform(0, W - h / 2)
    hist = np.zeros(N_DIR_BINS)
    hist[heading] = speed_h_s * h * rng.uniform(0.8, 1.2)
    return [x0, bottom - h, x0 + h / 2.5, bottom], list(hist)


def _normal_clip(seed: int, frames: int = 40, per_frame: int = 6) -> list[FrameObjects]:
    """Walkers at about 0.3 person heights per second, left or right (bins 0 and 4)."""
    rng = np.random.default_rng(seed)
    clip = []
    for _ in range(frames):
        boxes, hists = zip(
            *(_person(rng, 0.3, int(rng.choice([0, 4]))) for _ in range(per_frame)), strict=True
        )
        clip.append(frame_objects(boxes, ["person"] * per_frame, hists, (W, H)))
    return clip


@pytest.fixture(scope="module")
def model() -> ObjectNormality:
    return ObjectNormality.fit([_normal_clip(s) for s in range(4)])


def _one(box: list[float], name: str, hist: list[float]) -> FrameObjects:
    return frame_objects([box], [name], [hist], (W, H))


def test_normal_walkers_score_low(model: ObjectNormality) -> None:
    held_out = _normal_clip(99)
    scores = np.array([model.score(f).frame_score for f in held_out])
    # 1.0 is the 99th percentile of held-out normal objects: a new normal clip stays near it.
    assert np.median(scores) < 1.0
    assert model.scale.shape == (2,) and (model.scale > 0).all()


@pytest.mark.parametrize(
    ("name", "speed_h_s", "heading", "height_x", "reason"),
    [
        ("person", 1.5, 0, 1.0, "speed 5."),
        ("person", 0.3, 2, 1.0, "moving in a direction unusual for this area"),
        ("bicycle", 0.3, 0, 1.0, "a bicycle: rarely or never seen in the normal footage"),
        (MOTION_CLASS, 0.3, 0, 1.0, "a moving object: rarely or never seen"),
        ("person", 0.3, 0, 3.0, "object size unlike anything seen here (3.0×"),
    ],
)
def test_abnormal_object_is_flagged_with_its_reason(
    model: ObjectNormality, name: str, speed_h_s: float, heading: int, height_x: float, reason: str
) -> None:
    bottom = 200.0
    h = (10 + 0.15 * bottom) * height_x
    hist = [0.0] * N_DIR_BINS
    hist[heading] = speed_h_s * (10 + 0.15 * bottom)
    normal = _normal_clip(7, frames=1)[0]
    odd = _one([100, bottom - h, 100 + h / 2.5, bottom], name, hist)
    both = FrameObjects(
        np.concatenate([normal.xyxy, odd.xyxy]),
        np.concatenate([normal.class_name, odd.class_name]),
        np.concatenate([normal.dir_hist, odd.dir_hist]),
        (W, H),
    )
    scores = model.score(both)
    assert scores.top == len(normal), scores.reasons
    assert scores.frame_score > 3.0
    assert scores.reasons[len(normal)].startswith(reason)


def test_faster_is_more_abnormal(model: ObjectNormality) -> None:
    def at(speed: float) -> float:
        hist = [speed * 40.0] + [0.0] * (N_DIR_BINS - 1)
        return model.score(_one([100, 160, 112, 200], "person", hist)).frame_score

    assert at(0.3) < at(0.8) < at(2.0)


def test_save_load_round_trip(model: ObjectNormality, tmp_path: Path) -> None:
    path = tmp_path / "normal.npz"
    model.footage = (1000.0, 1600.0)
    model.save(path)
    back = ObjectNormality.load(path)
    frame = _normal_clip(5, frames=1)[0]
    np.testing.assert_allclose(back.score(frame).total, model.score(frame).total)
    assert back.footage == (1000.0, 1600.0)
    assert back.classes == model.classes and back.frame_wh == (W, H)


def test_load_refuses_another_version(model: ObjectNormality, tmp_path: Path) -> None:
    path = tmp_path / "old.npz"
    model.save(path)
    z = dict(np.load(path))
    z["meta"] = np.array(str(z["meta"]).replace(f'"version": {MODEL_VERSION}', '"version": 0'))
    np.savez(path, **z)
    with pytest.raises(ValueError, match="learn normal again"):
        ObjectNormality.load(path)


def test_fit_on_one_clip_uses_contiguous_folds() -> None:
    model = ObjectNormality.fit([_normal_clip(1, frames=50)])
    assert (model.scale != 1.0).all()  # measured on held-out folds, not left at the default


def test_fit_without_objects_says_why() -> None:
    empty = frame_objects(np.zeros((0, 4)), [], np.zeros((0, N_DIR_BINS)))
    with pytest.raises(ValueError, match="no objects"):
        ObjectNormality.fit([[empty, empty]])


def test_frame_objects_validates_shapes() -> None:
    with pytest.raises(ValueError, match="N×8"):
        frame_objects([[0, 0, 1, 1]], ["person"], np.zeros((1, 8))).__class__(
            np.zeros((1, 4)), np.array(["person"]), np.zeros((1, 3))
        )


def _square_frames(n: int, step_px: int) -> list[np.ndarray]:
    """A bright textured square moving right by ``step_px`` per frame on grey."""
    rng = np.random.default_rng(0)
    tex = rng.integers(150, 255, (30, 30), dtype=np.uint8)
    out = []
    for i in range(n):
        im = np.full((H, W), 60, np.uint8)
        x = 50 + i * step_px
        im[100:130, x : x + 30] = tex
        out.append(np.repeat(im[..., None], 3, axis=2))
    return out


def _dets(boxes: list[list[float]]) -> sv.Detections:
    xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)
    return sv.Detections(
        xyxy=xyxy,
        confidence=np.ones(len(xyxy), np.float32),
        class_id=np.zeros(len(xyxy), int),
        data={"class_name": np.array(["person"] * len(xyxy))},
    )


def test_undetected_mover_becomes_a_motion_blob_moving_right() -> None:
    frames = _square_frames(4, 3)
    objs = clip_objects(((f, _dets([])) for f in frames), fps=10.0)
    assert len(objs) == len(frames)  # frame 0 is scored too
    last = objs[-1]
    assert list(last.class_name) == [MOTION_CLASS]
    # The square spans x 59–89, y 100–130 in the last frame; flow bleeds a few px past it.
    box = last.xyxy[0]
    square = np.array([59, 100, 89, 130])
    assert (box[:2] <= square[:2]).all() and (box[2:] >= square[2:]).all()
    assert np.abs(box - square).max() <= 15
    # Flow points right (x+): the speed sits in the bins around 0° (bins 0 and 7).
    hist = last.dir_hist[0]
    assert hist[[0, 7]].sum() > 0.8 * hist.sum() > 0
    assert last.flow_xy[0, 0] > 5 * abs(last.flow_xy[0, 1])


def test_detected_mover_is_not_counted_twice() -> None:
    motion = ObjectMotion()
    frames = _square_frames(2, 3)
    motion.update(frames[0], 0.0, _dets([]))
    objs = motion.update(frames[1], 0.1, _dets([[53, 100, 83, 130]]))
    assert objs is not None
    assert list(objs.class_name) == ["person"]
    assert objs.dir_hist[0].sum() > 10.0  # px/s: 3 px per frame at 10 fps, averaged in the box


def test_clip_objects_round_trip(tmp_path: Path) -> None:
    clip = _normal_clip(3, frames=5)
    save_clip_objects(tmp_path / "c.npz", clip)
    back = load_clip_objects(tmp_path / "c.npz")
    assert len(back) == len(clip)
    for a, b in zip(clip, back, strict=True):
        np.testing.assert_allclose(a.xyxy, b.xyxy)
        np.testing.assert_allclose(a.dir_hist, b.dir_hist)
        assert list(a.class_name) == list(b.class_name) and a.frame_wh == b.frame_wh


@pytest.mark.parametrize("baseline", ["clip", "online"])
def test_eval_objects_refuses_cell_only_baselines(tmp_path: Path, baseline: str) -> None:
    import cv2
    from typer.testing import CliRunner

    from crowdsight.cli import _register, app
    from crowdsight.core.errors import InputError

    for clip in ("01", "02"):
        (tmp_path / "f" / clip).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(tmp_path / "f" / clip / f"{i:03d}.png"), np.zeros((8, 8), np.uint8))
    np.save(tmp_path / "y.npy", np.array([0, 1, 0, 1]))
    _register()
    args = ["--frames", str(tmp_path / "f"), "--labels", str(tmp_path / "y.npy")]
    res = CliRunner().invoke(app, ["eval", "anomaly", *args, "--baseline", baseline])
    assert isinstance(res.exception, InputError)
    assert "needs --method cells" in str(res.exception) and "\n" not in str(res.exception)


def test_score_refuses_another_frame_size(model: ObjectNormality) -> None:
    other = frame_objects([[1, 1, 5, 20]], ["person"], np.zeros((1, N_DIR_BINS)), (640, 480))
    with pytest.raises(ValueError, match="learned at 360×240: learn normal again"):
        model.score(other)
