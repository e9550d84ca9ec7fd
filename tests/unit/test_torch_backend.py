"""The torch backend computes what ONNX Runtime computes, op by op and on the bundled graphs.

Runs on the CPU (CI installs the CPU torch wheel through ``crowdsight[gpu]``); skips without
torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from crowdsight.core.errors import ModelError
from tests.conftest import require_model

torch = pytest.importorskip("torch", reason="the torch backend is optional: crowdsight[gpu]")
from crowdsight.models.torch_backend import TorchRuntime, supported_ops  # noqa: E402


def _save(tmp_path: Path, nodes: list[Any], inits: list[Any], in_shape: list[int]) -> Path:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    return path


def _c(name: str, arr: Any, dtype: Any = np.float32) -> Any:
    return numpy_helper.from_array(np.asarray(arr, dtype), name)


rng = np.random.default_rng(7)
W = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
B = rng.normal(size=(4,)).astype(np.float32)
DW = rng.normal(size=(3, 1, 3, 3)).astype(np.float32)

CASES: dict[str, tuple[list[Any], list[Any], list[int]]] = {
    "conv_pads_stride_dilation": (
        [
            helper.make_node(
                "Conv", ["x", "w", "b"], ["y"], pads=[1, 2, 1, 2], strides=[2, 1], dilations=[1, 2]
            )
        ],
        [_c("w", W), _c("b", B)],
        [1, 3, 9, 11],
    ),
    "conv_asymmetric_pads_depthwise": (
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[0, 0, 1, 1], strides=[2, 2], group=3)],
        [_c("w", DW)],
        [2, 3, 8, 8],
    ),
    "clip_relu6_leaky_sigmoid": (
        [
            helper.make_node("Clip", ["x", "lo", "hi"], ["a"]),
            helper.make_node("LeakyRelu", ["a"], ["b"], alpha=0.1),
            helper.make_node("Sigmoid", ["b"], ["y"]),
        ],
        [_c("lo", 0.0), _c("hi", 6.0)],
        [1, 3, 4, 4],
    ),
    "maxpool_ceil_and_pads": (
        [
            helper.make_node(
                "MaxPool",
                ["x"],
                ["y"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                ceil_mode=1,
            )
        ],
        [],
        [1, 2, 7, 9],
    ),
    "transpose_reshape_concat_squeeze": (
        [
            helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
            helper.make_node("Reshape", ["t", "s"], ["r"]),
            helper.make_node("Concat", ["r", "r"], ["c"], axis=1),
            helper.make_node("Unsqueeze", ["c", "ax"], ["u"]),
            helper.make_node("Squeeze", ["u", "ax"], ["y"]),
        ],
        [_c("s", [0, -1, 2], np.int64), _c("ax", [2], np.int64)],
        [2, 4, 3, 5],
    ),
    "arith_broadcast_softmax": (
        [
            helper.make_node("Mul", ["x", "k"], ["m"]),
            helper.make_node("Sub", ["m", "one"], ["s"]),
            helper.make_node("Div", ["s", "two"], ["d"]),
            helper.make_node("Add", ["d", "x"], ["a"]),
            helper.make_node("Softmax", ["a"], ["y"], axis=1),
        ],
        [_c("k", [[[0.5]], [[2.0]], [[3.0]]]), _c("one", 1.0), _c("two", 2.0)],
        [1, 3, 2, 2],
    ),
    "resize_nearest_and_linear": (
        [
            helper.make_node("Resize", ["x", "", "sc"], ["n"], mode="nearest"),
            helper.make_node(
                "Resize",
                ["n", "", "sc"],
                ["y"],
                mode="linear",
                coordinate_transformation_mode="half_pixel",
            ),
        ],
        [_c("sc", [1, 1, 2, 2])],
        [1, 2, 3, 5],
    ),
    "split_pad_slice": (
        [
            helper.make_node("Split", ["x", "sp"], ["a", "b"], axis=1),
            helper.make_node("Pad", ["a", "pads"], ["p"], mode="constant"),
            helper.make_node("Slice", ["b", "st", "en", "axs"], ["s"]),
            helper.make_node("Concat", ["p", "s"], ["y"], axis=2),
        ],
        [
            _c("sp", [1, 2], np.int64),
            _c("pads", [0, 0, 1, 0, 0, 0, 0, 0], np.int64),
            _c("st", [1], np.int64),
            _c("en", [10], np.int64),
            _c("axs", [1], np.int64),
        ],
        [1, 3, 4, 2],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_ops_match_onnxruntime(case: str, tmp_path: Path) -> None:
    nodes, inits, shape = CASES[case]
    path = _save(tmp_path, nodes, inits, shape)
    x = rng.normal(size=shape).astype(np.float32) * 3
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[
        0
    ]
    got = TorchRuntime(path, device="cpu").run({"x": x})[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_each_input_shape_is_traced_once(tmp_path: Path) -> None:
    nodes, inits, _ = CASES["conv_pads_stride_dilation"]
    path = _save(tmp_path, nodes, inits, ["n", 3, "h", "w"])
    rt = TorchRuntime(path, device="cpu")
    for shape in [(1, 3, 9, 11), (4, 3, 9, 11), (2, 3, 16, 16)]:
        x = rng.normal(size=shape).astype(np.float32)
        want = TorchRuntime(path, device="cpu", trace=False).run({"x": x})[0]
        np.testing.assert_allclose(rt.run({"x": x})[0], want, rtol=1e-5, atol=1e-5)
    assert sorted(s[0][0] for s in rt.traced_shapes) == [(3, 9, 11), (3, 16, 16)]


def test_unsupported_ops_are_named(tmp_path: Path) -> None:
    path = _save(
        tmp_path, [helper.make_node("Einsum", ["x", "x"], ["y"], equation="ij,ij->ij")], [], [2, 2]
    )
    assert "Einsum" not in supported_ops()
    with pytest.raises(ModelError, match="Einsum"):
        TorchRuntime(path, device="cpu")


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="models install"):
        TorchRuntime(tmp_path / "nope.onnx", device="cpu")


def _installed(name: str, file: str) -> Path:
    require_model(name)
    from crowdsight.models.install import model_path

    return Path(model_path(name, file))


@pytest.mark.models
@pytest.mark.parametrize(
    ("name", "file", "shape", "batch"),
    [
        ("csrnet", "csrnet.onnx", (3, 96, 128), 2),
        ("people-ssdlite", "ssdlite_people.onnx", (3, 300, 300), 3),
    ],
)
def test_bundled_graphs_match_onnxruntime(
    name: str, file: str, shape: tuple[int, ...], batch: int
) -> None:
    path = _installed(name, file)
    x = (np.random.default_rng(1).random((1, *shape)) * 255).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"image": x}
    )
    rt = TorchRuntime(path, device="cpu")
    got = rt.run({"image": x})
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(w).max())))
    # A batch gives each image the result it gets alone (what cross-camera batching needs).
    xb = np.concatenate([x] + [x[:, :, ::-1].copy()] * (batch - 1))
    gb = rt.run({"image": xb})
    for g1, gbat in zip(got, gb, strict=True):
        assert gbat.shape[0] == batch
        np.testing.assert_allclose(gbat[:1], g1, rtol=1e-4, atol=1e-5)
    # One traced module (free batch axis) served both batch sizes, and it computes what the
    # node-by-node interpretation computes.
    assert len(rt.traced_shapes) == 1
    interpreted = TorchRuntime(path, device="cpu", trace=False).run({"image": xb})
    for g, i in zip(gb, interpreted, strict=True):
        np.testing.assert_allclose(g, i, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(i).max())))
    # The fp16 path (what CUDA runs) stays close to float32.
    half = TorchRuntime(path, device="cpu", half=True).run({"image": x})
    for h, w in zip(half, want, strict=True):
        scale = max(1.0, float(np.abs(w).max()))
        assert float(np.abs(h - w).max()) <= 0.05 * scale


@pytest.mark.models
def test_a_graph_with_a_fixed_batch_is_traced_for_its_exact_shape() -> None:
    # NanoDet's head reshapes to a constant size, so export cannot free its batch axis.
    path = _installed("nanodet", "nanodet.onnx")
    x = (np.random.default_rng(3).random((1, 3, 416, 416)) * 255).astype(np.float32)
    rt = TorchRuntime(path, device="cpu")
    got = rt.run({rt.input_names[0]: x})
    assert rt.traced_shapes == [((1,), (((3, 416, 416), torch.float32),))]
    want = TorchRuntime(path, device="cpu", trace=False).run({rt.input_names[0]: x})
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(w).max())))
