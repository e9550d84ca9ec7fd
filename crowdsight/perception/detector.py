"""Object detection: the bundled people detector and a factory (`Detector` is in `base`).

Every detector turns a `Frame` into `Detections` (xyxy in frame pixels, confidence,
class_id, and the class name of each row in ``data["class_name"]``), so nothing downstream
knows which model ran.

* `SSDLitePeopleDetector` — the default: SSDLite-MobileNetV2 trained on pedestrians,
  converted from TensorFlow at install time (``people-ssdlite``). The network runs on a
  `crowdsight.models.runtime.Runtime` (ONNX Runtime by default); resizing, box decoding and
  NMS are numpy re-implementations of the TF Object Detection API steps baked into the
  original graph.
* `crowdsight.perception.yolo.OnnxYoloDetector` — bring-your-own YOLOv5/v8/11/YOLOX ONNX
  export (vehicles, bags, any COCO or custom class).

`build_detector` picks one from a short spec string (``"ssdlite"`` or a path to ``.onnx``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import supervision as sv

from crowdsight.config.runtime import RuntimeConfig
from crowdsight.core.errors import ConfigError, ModelError
from crowdsight.core.types import CLASS_NAME, Detections, FloatArray, Frame, ImageRGB
from crowdsight.models.manifest import installed_model
from crowdsight.models.runtime import load_runtime, takes_batch
from crowdsight.perception.base import Detector, make_detections
from crowdsight.perception.slicing import SliceSettings, sliced_detect

SSDLITE_MODEL = "people-ssdlite"

#: TF OD API ``faster_rcnn_box_coder`` scale factors (y, x, h, w) used by SSD configs.
DEFAULT_BOX_CODER_SCALES = (10.0, 10.0, 5.0, 5.0)


# --------------------------------------------------------------------------------------
# SSD maths (TF Object Detection API semantics)
# --------------------------------------------------------------------------------------


def tf1_resize_bilinear(image: ImageRGB, out_hw: tuple[int, int]) -> FloatArray:
    """TF1 ``ResizeBilinear`` with ``align_corners=False`` and no half-pixel centres.

    The frozen graph resizes this way: output pixel ``i`` samples input position
    ``i * in/out`` (OpenCV's resize samples ``(i + 0.5) * in/out - 0.5``), so we reproduce
    it exactly to feed the network what it was trained on.

    Returns:
        out_h×out_w×3 float32, values still in 0–255.

    Example:
        >>> img = np.arange(4, dtype=np.uint8).reshape(2, 2, 1).repeat(3, 2)
        >>> tf1_resize_bilinear(img, (4, 4))[0, :, 0].tolist()
        [0.0, 0.5, 1.0, 1.0]
    """
    h, w = image.shape[:2]
    oh, ow = out_hw
    # Inverse map dst (x, y) -> src (x·w/ow, y·h/oh): TF1's sampling with no half-pixel
    # shift; edge replication is TF's clamp of the high neighbour. OpenCV's float path
    # interpolates with exact weights (measured max |diff| 5e-5 against the numpy gather
    # version on random images, 20x faster: 0.4 vs 9.3 ms at 640x480 -> 300x300).
    m = np.array([[w / ow, 0.0, 0.0], [0.0, h / oh, 0.0]])
    warped = cv2.warpAffine(
        image.astype(np.float32),
        m,
        (ow, oh),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    out: FloatArray = np.asarray(warped, dtype=np.float32)
    return out


def decode_boxes(
    codes: FloatArray,
    anchors: FloatArray,
    scales: tuple[float, ...] = DEFAULT_BOX_CODER_SCALES,
) -> FloatArray:
    """TF OD API ``FasterRcnnBoxCoder.decode``: (ty, tx, th, tw) → (ymin, xmin, ymax, xmax).

    ``ycenter = ty / sy * ha + ycenter_a`` and ``h = exp(th / sh) * ha`` (same for x, w),
    all in the anchors' (normalised) units.

    Args:
        codes: N×4 regression outputs.
        anchors: N×4 anchors (ymin, xmin, ymax, xmax).
        scales: The coder's scale factors (y, x, h, w), ``10, 10, 5, 5`` for SSD.
    """
    ha = anchors[:, 2] - anchors[:, 0]
    wa = anchors[:, 3] - anchors[:, 1]
    yca = anchors[:, 0] + ha / 2
    xca = anchors[:, 1] + wa / 2
    sy, sx, sh, sw = scales
    yc = codes[:, 0] / sy * ha + yca
    xc = codes[:, 1] / sx * wa + xca
    h = np.exp(codes[:, 2] / sh) * ha
    w = np.exp(codes[:, 3] / sw) * wa
    return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1).astype(np.float32)


def encode_boxes(
    boxes: FloatArray,
    anchors: FloatArray,
    scales: tuple[float, ...] = DEFAULT_BOX_CODER_SCALES,
) -> FloatArray:
    """Inverse of `decode_boxes` (the training-time target encoding)."""
    ha = anchors[:, 2] - anchors[:, 0]
    wa = anchors[:, 3] - anchors[:, 1]
    yca = anchors[:, 0] + ha / 2
    xca = anchors[:, 1] + wa / 2
    h = boxes[:, 2] - boxes[:, 0]
    w = boxes[:, 3] - boxes[:, 1]
    yc = boxes[:, 0] + h / 2
    xc = boxes[:, 1] + w / 2
    sy, sx, sh, sw = scales
    return np.stack(
        [(yc - yca) / ha * sy, (xc - xca) / wa * sx, np.log(h / ha) * sh, np.log(w / wa) * sw],
        axis=1,
    ).astype(np.float32)


def nms_keep(
    xyxy: FloatArray, scores: FloatArray, iou_threshold: float, max_out: int | None = None
) -> npt.NDArray[np.intp]:
    """Greedy NMS (TF ``NonMaxSuppressionV3`` semantics): kept indices, best score first.

    A box is dropped when its IoU with an already kept, higher-scoring box exceeds
    ``iou_threshold``. Uses supervision's implementation.
    """
    if len(scores) == 0:
        return np.zeros(0, np.intp)
    keep = sv.box_non_max_suppression(
        np.concatenate([xyxy, scores[:, None]], axis=1), iou_threshold=iou_threshold
    )
    idx = np.flatnonzero(keep)
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    return idx[:max_out] if max_out is not None else idx


def ssd_postprocess(
    codes: FloatArray,
    scores: FloatArray,
    anchors: FloatArray,
    *,
    conf_threshold: float,
    nms_iou: float,
    max_detections: int,
    scales: tuple[float, ...] = DEFAULT_BOX_CODER_SCALES,
) -> tuple[FloatArray, FloatArray]:
    """Decode, NMS and clip one image's SSD outputs (one foreground class).

    Follows ``BatchMultiClassNonMaxSuppression`` of the graph: score filter, greedy NMS,
    sort, clip to the unit window and drop boxes with no area left, keep at most
    ``max_detections``. Filtering by ``conf_threshold`` before NMS gives the same result as
    after it (a box below the threshold can only suppress lower-scoring ones) and is faster.

    Returns:
        (boxes N×4 normalised ymin, xmin, ymax, xmax; scores N), best first.
    """
    sel = np.flatnonzero(scores > conf_threshold)
    if sel.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    boxes = decode_boxes(codes[sel], anchors[sel], scales)
    sc = scores[sel].astype(np.float32)
    # NMS in (x, y) order; IoU is symmetric in the axes so ymin/xmin order is fine too.
    keep = nms_keep(boxes, sc, nms_iou)
    boxes, sc = np.clip(boxes[keep], 0.0, 1.0), sc[keep]
    area_ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[area_ok][:max_detections], sc[area_ok][:max_detections]


class SSDLitePeopleDetector:
    """The bundled people detector (SSDLite-MobileNetV2 pedestrian model).

    The whole frame is resized to 300×300, so people smaller than about 1/8 of the frame
    height are hard for it; enable ``slicing`` for wide, high-resolution views (each tile is
    one more inference; see ``benchmarks/detector.py``). On mot17_mini sliced inference lifts
    person AP50 from 0.14 to 0.48, and Mall head recall from 0.20 to 0.39.

    Args:
        conf_threshold: Minimum person score. Lower finds more (occluded, small) people and
            more false alarms; 0.3–0.5 suits counting, ~0.1 suits AP measurement.
        nms_iou: IoU above which overlapping boxes are merged (default: the graph's 0.6).
            Lower values split crowds less well; higher ones leave duplicates.
        max_detections: Cap per inference (default: the graph's 100).
        model_dir: Folder with one ``.onnx`` model and one ``.npy`` anchors file (default:
            the installed ``people-ssdlite`` model, files named by its manifest).
        threads: Intra-op threads of the model (None: ``runtime``'s).
        slicing: Tile settings for sliced inference, or None for one pass per frame.
        runtime: Model backend (None: ONNX Runtime with its defaults).

    Example:
        >>> det = SSDLitePeopleDetector(conf_threshold=0.4)  # doctest: +SKIP
        >>> people = det.detect(frame)  # doctest: +SKIP
        >>> people.data["class_name"][:1]  # doctest: +SKIP
        array(['person'], dtype='<U6')
    """

    def __init__(
        self,
        conf_threshold: float = 0.4,
        nms_iou: float | None = None,
        *,
        max_detections: int | None = None,
        model_dir: Path | None = None,
        threads: int | None = None,
        slicing: SliceSettings | None = None,
        runtime: RuntimeConfig | None = None,
    ) -> None:
        onnx_file, anchors_path, extra = self._files(model_dir)
        config = (runtime or RuntimeConfig()).with_threads(threads)
        self.runtime = load_runtime(onnx_file, config)
        if not anchors_path.exists():
            raise ModelError(f"{anchors_path} is missing; run `crowdsight models install --force`")
        self.anchors: FloatArray = np.load(anchors_path).astype(np.float32)
        hw = extra.get("input_hw", [300, 300])
        self.input_hw = (int(hw[0]), int(hw[1]))
        self.scales = tuple(
            float(s) for s in extra.get("box_coder_scales", DEFAULT_BOX_CODER_SCALES)
        )
        self.conf_threshold = conf_threshold
        self.nms_iou = float(nms_iou if nms_iou is not None else extra.get("nms_iou", 0.6))
        self.max_detections = int(max_detections or extra.get("max_detections", 100))
        self.class_names: list[str] = list(extra.get("class_names", ["person"]))
        self.slicing = slicing

    @staticmethod
    def _files(model_dir: Path | None) -> tuple[Path, Path, dict[str, Any]]:
        """(ONNX file, anchors file, settings) from the manifest, or the one of each in a folder."""
        if model_dir is None:
            model = installed_model(SSDLITE_MODEL)
            return model.file(".onnx"), model.file(".npy"), model.extra
        onnx_files, npy_files = sorted(model_dir.glob("*.onnx")), sorted(model_dir.glob("*.npy"))
        if len(onnx_files) != 1 or len(npy_files) != 1:
            raise ModelError(f"{model_dir} must hold one .onnx model and one .npy anchors file")
        return onnx_files[0], npy_files[0], {}

    def detect(self, frame: Frame) -> Detections:
        """People in the frame (class ``person``), boxes in frame pixels."""
        if self.slicing is not None:
            return sliced_detect(
                self.detect_image, frame.image, self.slicing, detect_images=self.detect_images
            )
        return self.detect_image(frame.image)

    def detect_image(self, image: ImageRGB) -> Detections:
        """People in one RGB image (any size), boxes in its pixels."""
        return self.detect_images([image])[0]

    def detect_images(self, images: Sequence[ImageRGB]) -> list[Detections]:
        """People in each of several RGB images (any sizes): one model call when the runtime
        takes a batch (a free first axis: cross-camera batching, the torch backend), else one
        call per image (the installed graph fixes the batch to 1)."""
        if len(images) > 1 and not takes_batch(self.runtime):
            return [self.detect_images([i])[0] for i in images]
        x = np.stack([tf1_resize_bilinear(i, self.input_hw).transpose(2, 0, 1) for i in images])
        codes, scores = self.runtime.run({"image": np.ascontiguousarray(x)})
        out = []
        for k, image in enumerate(images):
            h, w = image.shape[:2]
            boxes, conf = ssd_postprocess(
                codes[k],
                scores[k, :, 1],
                self.anchors,
                conf_threshold=self.conf_threshold,
                nms_iou=self.nms_iou,
                max_detections=self.max_detections,
                scales=self.scales,
            )
            xyxy = boxes[:, [1, 0, 3, 2]] * np.array([w, h, w, h], np.float32)
            out.append(make_detections(xyxy, conf, np.zeros(len(conf), int), self.class_names))
        return out

    def reset(self) -> None:
        """Nothing to forget: the detector keeps no per-stream state."""


class CombinedDetector:
    """Several detectors on the same frame, merged (``"nanodet+ssdlite"``).

    Their boxes are pooled and duplicates merged class by class with non-maximum merging
    (supervision's NMM: overlapping boxes above ``iou`` become one box spanning both, with
    the higher confidence), so a person both models find counts once and a person only one
    finds is kept. Costs the sum of the detectors' times.
    """

    def __init__(self, detectors: list[Detector], iou: float = 0.5) -> None:
        self.detectors = detectors
        self.iou = iou
        # The most permissive of the parts' tracker thresholds, so none of them is starved.
        parts = [getattr(d, "track_thresholds", (0.7, 0.6)) for d in detectors]
        self.track_thresholds = (min(p[0] for p in parts), min(p[1] for p in parts))

    def detect(self, frame: Frame) -> Detections:
        """The union of every detector's objects, duplicates merged."""
        parts = [d.detect(frame) for d in self.detectors]
        parts = [p for p in parts if len(p)]
        if not parts:
            return make_detections(
                np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, int), []
            )
        merged = Detections.merge([_names_only(p) for p in parts])
        names = np.asarray(merged.data[CLASS_NAME])
        vocab = sorted(set(names.tolist()))
        merged.class_id = np.array([vocab.index(n) for n in names], int)
        return merged.with_nmm(threshold=self.iou, class_agnostic=False)

    def reset(self) -> None:
        """Reset every detector that keeps state."""
        for d in self.detectors:
            if hasattr(d, "reset"):
                d.reset()


def _names_only(d: Detections) -> Detections:
    """``d`` with only the class-name column (detectors may add others)."""
    return Detections(
        xyxy=d.xyxy,
        confidence=d.confidence if d.confidence is not None else np.ones(len(d), np.float32),
        class_id=np.zeros(len(d), int),
        data={CLASS_NAME: np.asarray(d.data.get(CLASS_NAME, np.full(len(d), "person")))},
    )


def build_detector(spec: str | None = None, **kwargs: Any) -> Detector:
    """A detector from a short spec.

    Args:
        spec: ``None``, ``"ssdlite"`` or ``"people-ssdlite"`` for the bundled people
            detector; ``"nanodet"`` for the bundled people/vehicle/bag detector
            (`crowdsight.perception.nanodet.NanoDetDetector`); a path to an ``.onnx`` file
            for a YOLO-family export (`crowdsight.perception.yolo.OnnxYoloDetector`); several
            joined by ``+`` (``"nanodet+ssdlite"``) for a `CombinedDetector`.
        **kwargs: Passed to the detector's constructor (e.g. ``conf_threshold``).

    Raises:
        ConfigError: the spec is neither a known name nor an existing ``.onnx`` file.

    Example:
        >>> build_detector("nope")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        crowdsight.core.errors.ConfigError: unknown detector 'nope': use 'ssdlite', ...
    """
    if spec is None or spec.lower() in ("ssdlite", SSDLITE_MODEL):
        return SSDLitePeopleDetector(**kwargs)
    if spec.lower() == "nanodet":
        from crowdsight.perception.nanodet import NanoDetDetector

        return NanoDetDetector(**kwargs)
    if "+" in spec:
        parts = [p.strip() for p in spec.split("+") if p.strip()]
        return CombinedDetector([build_detector(p, **kwargs) for p in parts])
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".onnx":
        if not path.exists():
            raise ConfigError(f"detector model {path} not found")
        from crowdsight.perception.yolo import OnnxYoloDetector

        return OnnxYoloDetector(path, **kwargs)
    raise ConfigError(f"unknown detector {spec!r}: use 'ssdlite', 'nanodet' or a .onnx path")
