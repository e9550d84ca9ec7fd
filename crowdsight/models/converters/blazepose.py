"""BlazePose GHUM (full) from the ``mediapipe==0.10.14`` wheel: a person mask for clothing colours.

The wheel (Apache-2.0) carries MediaPipe's pose landmark model as TFLite. crowdsight uses two of
its outputs on a person crop: the **segmentation mask** (which pixels are the person, not the
wall behind them) and the rows of the shoulders, hips and ankles, so clothing colours are read
from the clothes. The face points the model also returns are dropped where they are read
(`crowdsight.describe.pose`); nothing of them is kept.

OpenCV's DNN module reads TFLite directly; as for BlazeFace its new engine only exposes the
graph's last output, so the converter copies the file and checks that the classic engine sees
all five outputs. Later mediapipe releases no longer ship the file, so the wheel is pinned to
the CPython 3.11 manylinux build by platform (only the TFLite member is used, never the
package's code; any Python can install it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from crowdsight.core.errors import ModelError
from crowdsight.models.runtime import OpenCvDnnRuntime
from crowdsight.models.spec import ConvertedModel, ModelSpec, TensorInfo

POSE_FILE = "pose_landmark_full.tflite"
_MEMBER = f"mediapipe/modules/pose_landmark/{POSE_FILE}"
#: Graph output names: 195 landmark values (39 points × x, y, z, visibility, presence),
#: the pose flag, the 256×256 segmentation logits, heatmaps and world landmarks.
OUTPUTS = {
    "landmarks": "Identity",
    "flag": "Identity_1",
    "segmentation": "Identity_2",
    "heatmap": "Identity_3",
    "world": "Identity_4",
}
INPUT_SIZE = 256


def check_loads(path: Path) -> tuple[str, ...]:
    """Load the TFLite file with OpenCV's classic engine; return its output names.

    Raises:
        ModelError: OpenCV cannot read the file or it lacks an expected output.
    """
    names = tuple(o.name for o in OpenCvDnnRuntime(path).outputs)
    missing = sorted(set(OUTPUTS.values()) - set(names))
    if missing:
        raise ModelError(f"{path.name}: OpenCV sees outputs {names}, missing {missing}")
    return names


def convert(extracted: Path, out_dir: Path) -> ConvertedModel:
    """Converter for `BLAZEPOSE_SPEC`: copy the TFLite file and check OpenCV reads it."""
    dst = out_dir / POSE_FILE
    shutil.copyfile(extracted / _MEMBER, dst)
    check_loads(dst)
    return ConvertedModel(
        files=(POSE_FILE,),
        inputs=(
            TensorInfo(
                "input", (1, 3, INPUT_SIZE, INPUT_SIZE), "float32", "RGB in [0, 1], NCHW for OpenCV"
            ),
        ),
        outputs=(
            TensorInfo(
                OUTPUTS["landmarks"], (1, 195), "float32", "39 points × (x, y, z, vis, pres)"
            ),
            TensorInfo(OUTPUTS["flag"], (1, 1), "float32", "probability a person is in the crop"),
            TensorInfo(
                OUTPUTS["segmentation"],
                (1, 1, INPUT_SIZE, INPUT_SIZE),
                "float32",
                "person segmentation logits",
            ),
        ),
        extra={
            "outputs": OUTPUTS,
            "input_size": INPUT_SIZE,
            "runtime": "opencv-dnn classic engine",
        },
    )


BLAZEPOSE_SPEC = ModelSpec(
    name="blazepose",
    role="person mask for clothing colours",
    requirement="mediapipe==0.10.14",
    wheel_filename="mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    sha256="a807328339e7356fda0bb14df12fedbf1d33bdf81649c5f8666b0026b1cc30b4",
    licence="Apache-2.0 (mediapipe wheel metadata)",
    members=(_MEMBER,),
    convert=convert,
    pip_platform=(
        "--platform",
        "manylinux2014_x86_64",
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--abi",
        "cp311",
    ),
)
