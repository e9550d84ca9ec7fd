"""YOLO output decoding, end to end through ONNX Runtime, for the three output layouts.

Each test builds a tiny ONNX model whose only node is a Constant holding a hand-written
output tensor, so the expected boxes are known exactly.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from crowdsight.core.errors import ConfigError, ModelError
from crowdsight.core.types import CLASS_NAME, Frame
from crowdsight.perception.detector import Detector, build_detector
from crowdsight.perception.yolo import (
    COCO_CLASSES,
    OnnxYoloDetector,
    decode_yolo_output,
    letterbox,
    resolve_style,
)

INPUT = 64  # network input side, pixels


def constant_model(path: Path, output: np.ndarray) -> Path:
    """An ONNX model with a 1×3×64×64 input that always returns ``output``."""
    node = helper.make_node(
        "Constant", [], ["output0"], value=numpy_helper.from_array(output.astype(np.float32))
    )
    graph = helper.make_graph(
        [node],
        "constant_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, INPUT, INPUT])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


#: v5 rows: cx, cy, w, h, objectness, 3 class probabilities.
V5_ROWS = np.array(
    [
        [20, 20, 10, 20, 0.9, 0.1, 0.8, 0.1],  # class 1, conf 0.72: kept
        [21, 20, 10, 20, 0.8, 0.1, 0.7, 0.2],  # same class, IoU ~0.8, conf 0.56: suppressed
        [20, 20, 10, 20, 0.9, 0.0, 0.1, 0.7],  # same place, class 2, conf 0.63: kept
        [50, 50, 8, 8, 0.2, 0.1, 0.2, 0.1],  # conf 0.04: below threshold
    ],
    np.float32,
)
#: Real exports have thousands of rows; pad with empty ones so "auto" sees a realistic shape.
V5_PADDED = np.concatenate([V5_ROWS, np.zeros((96, 8), np.float32)])
#: The two survivors in network-input pixels (xyxy), best first, with class ids.
EXPECTED_XYXY = np.array([[15, 10, 25, 30], [15, 10, 25, 30]], np.float32)
EXPECTED_CLASS = [1, 2]


def v8_output() -> np.ndarray:
    """The same boxes as `V5_ROWS` in v8 layout: 1×(4+C)×N, scores without objectness."""
    rows = np.concatenate([V5_PADDED[:, :4], V5_PADDED[:, 5:] * V5_PADDED[:, 4:5]], axis=1)
    return rows.T[None]


def yolox_raw_output() -> np.ndarray:
    """Raw YOLOX head output for a 64×64 input (strides 8/16/32 → 64+16+4 rows)."""
    out = np.zeros((84, 8), np.float32)
    # stride-8 cell at row 2, col 3: centre ((0.5+3)*8, (0.5+2)*8) = (28, 20), size 16×32
    out[2 * 8 + 3] = [0.5, 0.5, math.log(2), math.log(4), 0.9, 0.0, 0.0, 1.0]
    return out[None]


@pytest.mark.parametrize(
    ("style", "output"),
    [
        ("yolov5", V5_PADDED[None]),
        ("yolov8", v8_output()),
        ("auto", V5_PADDED[None]),
        ("auto", v8_output()),
    ],
)
def test_v5_v8_decode_nms_and_names(tmp_path: Path, style: str, output: np.ndarray) -> None:
    det = OnnxYoloDetector(
        constant_model(tmp_path / "m.onnx", output), conf_threshold=0.25, style=style
    )
    image = np.zeros((INPUT, INPUT, 3), np.uint8)  # fits exactly: no letterbox change
    d = det.detect(Frame("cam", 0, 0.0, image))
    assert d.class_id.tolist() == EXPECTED_CLASS
    np.testing.assert_allclose(d.xyxy, EXPECTED_XYXY, atol=1e-4)
    np.testing.assert_allclose(d.confidence, [0.72, 0.63], atol=1e-5)
    assert d.data[CLASS_NAME].tolist() == [COCO_CLASSES[1], COCO_CLASSES[2]]


def test_yolox_grid_decode(tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    names.write_text("walker\ncyclist\nvan\n")
    det = OnnxYoloDetector(
        constant_model(tmp_path / "x.onnx", yolox_raw_output()),
        class_names_file=names,
        style="yolox",
        yolox_decode=True,
    )
    d = det.detect(Frame("cam", 0, 0.0, np.zeros((INPUT, INPUT, 3), np.uint8)))
    assert len(d) == 1
    np.testing.assert_allclose(d.xyxy[0], [20, 4, 36, 36], atol=1e-4)
    assert d.data[CLASS_NAME].tolist() == ["van"]
    assert d.confidence[0] == pytest.approx(0.9)


def test_yolox_without_decode_reads_pixels_directly() -> None:
    xyxy, conf, cls = decode_yolo_output(
        V5_ROWS[None], "yolox", conf_threshold=0.25, input_hw=(INPUT, INPUT)
    )
    assert len(conf) == 3 and cls.tolist() == [1, 1, 2]
    np.testing.assert_allclose(xyxy[0], [15, 10, 25, 30])


def test_yolox_decode_rejects_wrong_row_count() -> None:
    with pytest.raises(ModelError, match="rows"):
        decode_yolo_output(
            np.zeros((1, 10, 8), np.float32),
            "yolox",
            conf_threshold=0.1,
            input_hw=(INPUT, INPUT),
            yolox_decode=True,
        )


def test_boxes_mapped_back_through_letterbox(tmp_path: Path) -> None:
    det = OnnxYoloDetector(constant_model(tmp_path / "m.onnx", V5_ROWS[None]), style="yolov5")
    # 128 wide × 64 high: scale 0.5, 16 px of padding above and below
    d = det.detect(Frame("cam", 0, 0.0, np.zeros((64, 128, 3), np.uint8)))
    np.testing.assert_allclose(d.xyxy[0], [30, 0, 50, 28], atol=1e-4)  # y clipped at 0


@pytest.mark.parametrize(
    ("shape", "style", "expected"),
    [
        ((1, 25200, 85), "auto", "yolov5"),
        ((1, 84, 8400), "auto", "yolov8"),
        ((1, 8400, 85), "yolox", "yolox"),
    ],
)
def test_resolve_style(shape: tuple[int, ...], style: str, expected: str) -> None:
    assert resolve_style(shape, style) == expected  # type: ignore[arg-type]


def test_resolve_style_rejects_batches() -> None:
    with pytest.raises(ModelError):
        resolve_style((2, 84, 8400), "auto")


def test_letterbox_centres_and_scales() -> None:
    img, lb = letterbox(np.full((100, 200, 3), 255, np.uint8), (64, 64))
    assert lb.scale == pytest.approx(0.32) and lb.pad_xy == (0.0, 16.0)
    assert img[0, 0, 0] == 114 and img[32, 32, 0] == 255


def test_class_names_from_yaml(tmp_path: Path) -> None:
    f = tmp_path / "data.yaml"
    f.write_text("names:\n  0: person\n  1: bag\n")
    det = OnnxYoloDetector(constant_model(tmp_path / "m.onnx", V5_ROWS[None]), class_names_file=f)
    assert det.class_names == ["person", "bag"]


def test_build_detector_dispatch(tmp_path: Path) -> None:
    path = constant_model(tmp_path / "m.onnx", V5_ROWS[None])
    det = build_detector(str(path))
    assert isinstance(det, OnnxYoloDetector) and isinstance(det, Detector)
    with pytest.raises(ConfigError):
        build_detector(str(tmp_path / "missing.onnx"))
    with pytest.raises(ConfigError):
        build_detector("yolo-from-the-internet")
