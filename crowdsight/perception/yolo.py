"""Bring-your-own YOLO-family ONNX detector (vehicles, bags, any COCO or custom class).

Three output layouts are understood (batch 1, first output of the model):

========== ================= ==================================================================
style      output shape      rows
========== ================= ==================================================================
``yolov5`` 1 × N × (5 + C)   cx, cy, w, h, objectness, C class probabilities
``yolov8`` 1 × (4 + C) × N   cx, cy, w, h, C class scores (no objectness); also YOLO11
``yolox``  1 × N × (5 + C)   as yolov5; with ``yolox_decode=True`` the raw per-cell grid
                             outputs of an export made without ``decode_in_inference``
========== ================= ==================================================================

Boxes are in network-input pixels. ``style="auto"`` tells v5 from v8 by which axis is the
long one (N is thousands, 4 + C at most a few hundred); YOLOX has v5's layout and must be
named. Pre-processing is a letterbox to the input size: centred, grey (114) padding, RGB,
``/255`` for v5/v8; top-left padding, BGR, 0–255 for YOLOX (the official YOLOX exports).
Post-processing is a confidence filter and class-wise NMS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
import yaml

from crowdsight.config.runtime import RuntimeConfig
from crowdsight.core.errors import ConfigError, ModelError
from crowdsight.core.types import Detections, FloatArray, Frame, ImageRGB
from crowdsight.models.runtime import load_runtime
from crowdsight.perception.base import classwise_nms, make_detections
from crowdsight.perception.slicing import SliceSettings, sliced_detect

YoloStyle = Literal["auto", "yolov5", "yolov8", "yolox"]

#: The 80 COCO class names in the order YOLO exports use (ids 0..79).
COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)  # fmt: skip


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the network input: ``input = image * scale + pad``."""

    scale: float
    pad_xy: tuple[float, float]

    def to_image(self, xyxy: FloatArray, image_wh: tuple[int, int]) -> FloatArray:
        """Boxes from network-input pixels back to image pixels, clipped to the image."""
        px, py = self.pad_xy
        out = (xyxy - np.array([px, py, px, py], np.float32)) / np.float32(self.scale)
        w, h = image_wh
        clipped: FloatArray = np.clip(out, 0, np.array([w, h, w, h], np.float32)).astype(np.float32)
        return clipped


def letterbox(
    image: ImageRGB, input_wh: tuple[int, int], *, center: bool = True, pad_value: int = 114
) -> tuple[npt.NDArray[np.uint8], Letterbox]:
    """Resize keeping the aspect ratio, then pad to ``input_wh``.

    Args:
        image: H×W×3 uint8.
        input_wh: Network input (width, height).
        center: Pad evenly on both sides (Ultralytics) or only right/bottom (YOLOX).
        pad_value: Grey level of the padding.

    Example:
        >>> img, lb = letterbox(np.zeros((100, 200, 3), np.uint8), (64, 64))
        >>> img.shape, lb.scale, lb.pad_xy
        ((64, 64, 3), 0.32, (0.0, 16.0))
    """
    h, w = image.shape[:2]
    iw, ih = input_wh
    scale = min(iw / w, ih / h)
    nw, nh = round(w * scale), round(h * scale)
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    px, py = ((iw - nw) / 2, (ih - nh) / 2) if center else (0.0, 0.0)
    left, top = round(px - 0.1) if center else 0, round(py - 0.1) if center else 0
    out = np.full((ih, iw, 3), pad_value, np.uint8)
    out[top : top + nh, left : left + nw] = resized
    return out, Letterbox(scale, (float(left), float(top)))


def yolox_grid_decode(
    raw: FloatArray, input_hw: tuple[int, int], strides: tuple[int, ...] = (8, 16, 32)
) -> FloatArray:
    """Decode YOLOX raw head outputs (N×(5+C), per grid cell) to centre-size pixels.

    ``cx = (x + col) * stride``, ``w = exp(w) * stride``; scores are left as they are (the
    exported head already applies the sigmoid). Rows are ordered stride by stride, row-major.
    """
    grids, strides_col = [], []
    for s in strides:
        gh, gw = input_hw[0] // s, input_hw[1] // s
        ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        grids.append(np.stack([xs, ys], axis=-1).reshape(-1, 2))
        strides_col.append(np.full((gh * gw, 1), s))
    grid = np.concatenate(grids).astype(np.float32)
    stride = np.concatenate(strides_col).astype(np.float32)
    if grid.shape[0] != raw.shape[0]:
        raise ModelError(
            f"YOLOX output has {raw.shape[0]} rows, expected {grid.shape[0]} for input "
            f"{input_hw} and strides {strides}; is yolox_decode needed?"
        )
    out = raw.astype(np.float32).copy()
    out[:, :2] = (out[:, :2] + grid) * stride
    out[:, 2:4] = np.exp(out[:, 2:4]) * stride
    return out


def resolve_style(shape: tuple[int, ...], style: YoloStyle) -> YoloStyle:
    """Which layout an output of ``shape`` has (``auto``: the long axis holds the boxes)."""
    if len(shape) != 3 or shape[0] != 1:
        raise ModelError(f"unsupported YOLO output shape {shape}: expected 1×N×K or 1×K×N")
    if style != "auto":
        return style
    return "yolov8" if shape[1] < shape[2] else "yolov5"


def decode_yolo_output(
    output: FloatArray,
    style: YoloStyle,
    *,
    conf_threshold: float,
    input_hw: tuple[int, int],
    yolox_decode: bool = False,
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int_]]:
    """Candidate boxes from one raw YOLO output.

    Args:
        output: The model's first output (batch 1).
        style: ``yolov5``, ``yolov8``, ``yolox`` or ``auto``.
        conf_threshold: Minimum ``objectness × class score`` (v5/YOLOX) or class score (v8).
        input_hw: Network input (height, width), for YOLOX grid decoding.
        yolox_decode: Apply YOLOX grid/stride decoding first.

    Returns:
        (xyxy N×4 in network-input pixels, confidence N, class_id N), before NMS.
    """
    style = resolve_style(tuple(output.shape), style)
    if style == "yolov8":
        rows = output[0].T.astype(np.float32)
        cls = rows[:, 4:]
    else:
        rows = output[0].astype(np.float32)
        if style == "yolox" and yolox_decode:
            rows = yolox_grid_decode(rows, input_hw)
        cls = rows[:, 5:] * rows[:, 4:5]
    if cls.shape[1] == 0:
        raise ModelError(f"YOLO output {output.shape} has no class columns for style {style}")
    class_id = cls.argmax(axis=1)
    conf = cls[np.arange(len(cls)), class_id]
    keep = conf > conf_threshold
    cx, cy, w, h = (rows[keep, i] for i in range(4))
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    return xyxy, conf[keep].astype(np.float32), class_id[keep].astype(int)


def load_class_names(path: Path | None) -> list[str]:
    """Class names: COCO by default, else from a file.

    The file may be plain text (one name per line), JSON (a list, or ``{"names": ...}``)
    or YAML in the Ultralytics dataset format (``names:`` as a list or an ``id: name`` map).
    """
    if path is None:
        return list(COCO_CLASSES)
    if not path.exists():
        raise ConfigError(f"class names file {path} not found")
    text = path.read_text()
    if path.suffix.lower() in (".json", ".yaml", ".yml"):
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        names = data.get("names", data) if isinstance(data, dict) else data
        if isinstance(names, dict):
            return [str(names[k]) for k in sorted(names, key=int)]
        if isinstance(names, list):
            return [str(n) for n in names]
        raise ConfigError(f"{path}: expected a list of class names or a 'names' entry")
    return [line.strip() for line in text.splitlines() if line.strip()]


class OnnxYoloDetector:
    """A YOLOv5 / YOLOv8 / YOLO11 / YOLOX ONNX export as a crowdsight `Detector`.

    Args:
        path: The ``.onnx`` file (batch 1; static or dynamic input size).
        class_names_file: Names of the model's classes (default: the 80 COCO classes).
        conf_threshold: Minimum confidence; lower finds more small/occluded objects and more
            false alarms.
        nms_iou: Class-wise NMS IoU; lower merges neighbours in dense crowds, higher leaves
            duplicates.
        input_size: (width, height) for models with a dynamic input (default 640×640);
            ignored when the model fixes its input size.
        style: Output layout, see the module docstring (``auto`` cannot detect YOLOX).
        yolox_decode: The YOLOX export outputs raw grid offsets (``decode_in_inference`` off).
        max_detections: Cap on boxes per frame after NMS.
        threads: Intra-op threads of the model (None: ``runtime``'s).
        slicing: Tile settings for sliced inference, or None.
        runtime: Model backend (None: ONNX Runtime with its defaults).

    Example:
        >>> det = OnnxYoloDetector(Path("yolov8n.onnx"))  # doctest: +SKIP
        >>> cars = det.detect(frame)  # doctest: +SKIP
    """

    def __init__(
        self,
        path: Path,
        class_names_file: Path | None = None,
        conf_threshold: float = 0.25,
        nms_iou: float = 0.45,
        input_size: tuple[int, int] | None = None,
        *,
        style: YoloStyle = "auto",
        yolox_decode: bool = False,
        max_detections: int = 300,
        threads: int | None = None,
        slicing: SliceSettings | None = None,
        runtime: RuntimeConfig | None = None,
    ) -> None:
        config = (runtime or RuntimeConfig()).with_threads(threads)
        self.runtime = load_runtime(Path(path), config)
        inp = self.runtime.inputs[0]
        self.input_name: str = inp.name
        self.input_dtype = np.float16 if inp.dtype == "float16" else np.float32
        h, w = inp.shape[2], inp.shape[3]
        if isinstance(h, int) and isinstance(w, int):
            self.input_wh = (w, h)
        else:
            self.input_wh = input_size or (640, 640)
        self.class_names = load_class_names(class_names_file)
        self.conf_threshold = conf_threshold
        self.nms_iou = nms_iou
        self.style: YoloStyle = style
        self.yolox_decode = yolox_decode
        self.max_detections = max_detections
        self.slicing = slicing

    def detect(self, frame: Frame) -> Detections:
        """Objects in the frame, class names in ``data["class_name"]``."""
        if self.slicing is not None:
            return sliced_detect(self.detect_image, frame.image, self.slicing)
        return self.detect_image(frame.image)

    def _preprocess(self, image: ImageRGB) -> tuple[npt.NDArray[np.floating], Letterbox]:
        is_yolox = self.style == "yolox"
        boxed, lb = letterbox(image, self.input_wh, center=not is_yolox)
        if is_yolox:  # official YOLOX exports: BGR, 0-255
            x = boxed[:, :, ::-1].astype(np.float32)
        else:
            x = boxed.astype(np.float32) / np.float32(255.0)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None]).astype(self.input_dtype), lb

    def detect_image(self, image: ImageRGB) -> Detections:
        """Objects in one RGB image, boxes in its pixels."""
        x, lb = self._preprocess(image)
        output = np.asarray(self.runtime.run({self.input_name: x})[0], np.float32)
        xyxy, conf, cls = decode_yolo_output(
            output,
            self.style,
            conf_threshold=self.conf_threshold,
            input_hw=(self.input_wh[1], self.input_wh[0]),
            yolox_decode=self.yolox_decode,
        )
        xyxy, conf, cls = classwise_nms(xyxy, conf, cls, self.nms_iou, self.max_detections)
        h, w = image.shape[:2]
        return make_detections(lb.to_image(xyxy, (w, h)), conf, cls, self.class_names)

    def reset(self) -> None:
        """Nothing to forget: the detector keeps no per-stream state."""
