"""TF.js graph model -> ONNX: each op against the numpy reference, the reference against
independent implementations (OpenCV, direct loops), and the weight-shard reader."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from crowdsight.core.errors import ModelError
from crowdsight.models.converters import tfjs


def _s(text: str) -> dict[str, str]:
    return {"s": base64.b64encode(text.encode()).decode()}


def _ints(*v: int) -> dict[str, Any]:
    return {"list": {"i": [str(i) for i in v]}}


def write_model(
    folder: Path,
    input_shape: tuple[int, ...],
    nodes: list[dict[str, Any]],
    consts: dict[str, np.ndarray],
    outputs: list[str],
    *,
    float16: bool = False,
) -> Path:
    """A TF.js graph model in ``folder`` (model.json + one shard), as tfjs-converter writes."""
    blob = b""
    weights = []
    for name, arr in consts.items():
        entry: dict[str, Any] = {"name": name, "shape": list(arr.shape)}
        if arr.dtype.kind == "f":
            entry["dtype"] = "float32"
            if float16:
                entry["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
                blob += arr.astype(np.float16).tobytes()
            else:
                blob += arr.astype(np.float32).tobytes()
        else:
            entry["dtype"] = "int32"
            blob += arr.astype(np.int32).tobytes()
        weights.append(entry)
    graph_nodes = [
        {
            "name": "x",
            "op": "Placeholder",
            "attr": {"shape": {"shape": {"dim": [{"size": str(d)} for d in input_shape]}}},
        }
    ]
    graph_nodes += [{"name": n, "op": "Const", "attr": {}} for n in consts]
    graph_nodes += nodes
    doc = {
        "format": "graph-model",
        "modelTopology": {"node": graph_nodes},
        "weightsManifest": [{"paths": ["shard.bin"], "weights": weights}],
        "signature": {
            "outputs": {f"{o}:0": {"name": f"{o}:0", "tensorShape": {"dim": []}} for o in outputs}
        },
    }
    (folder / "shard.bin").write_bytes(blob)
    path = folder / "model.json"
    path.write_text(json.dumps(doc))
    return path


def run_both(path: Path, x: np.ndarray) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    graph = tfjs.load_graph(path)
    ref = tfjs.run_reference(graph, {"x": x})
    model = tfjs.to_onnx(graph)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(graph.outputs, {"x": x})
    return ref, got


RNG = np.random.default_rng(7)


def conv_direct(x: np.ndarray, w: np.ndarray, stride: int, pad: tuple[int, int, int, int]):
    """Textbook NHWC convolution, one output pixel at a time (groups from the shapes)."""
    x = np.pad(x, ((0, 0), (pad[0], pad[2]), (pad[1], pad[3]), (0, 0)))
    kh, kw, cig, co = w.shape
    g = x.shape[3] // cig
    cog = co // g
    oh = (x.shape[1] - kh) // stride + 1
    ow = (x.shape[2] - kw) // stride + 1
    out = np.zeros((1, oh, ow, co))
    for i in range(oh):
        for j in range(ow):
            patch = x[0, i * stride : i * stride + kh, j * stride : j * stride + kw]
            for o in range(co):
                gi = o // cog
                out[0, i, j, o] = np.sum(patch[..., gi * cig : (gi + 1) * cig] * w[..., o])
    return out


@pytest.mark.parametrize(
    ("padding", "stride", "groups"),
    [("VALID", 2, 1), ("SAME", 1, 1), ("SAME", 2, 4)],
)
def test_conv2d_matches_direct_convolution_and_onnx(tmp_path, padding, stride, groups):
    x = RNG.normal(size=(1, 9, 11, 8)).astype(np.float32)
    w = RNG.normal(size=(3, 3, 8 // groups, 8)).astype(np.float32)
    node = {
        "name": "y",
        "op": "Conv2D",
        "input": ["x", "w"],
        "attr": {"padding": _s(padding), "strides": _ints(1, stride, stride, 1)},
    }
    ref, got = run_both(write_model(tmp_path, x.shape, [node], {"w": w}, ["y"]), x)
    pads = (0, 0, 0, 0)
    if padding == "SAME":
        t, b = tfjs._same_pads(9, 3, stride)
        left, r = tfjs._same_pads(11, 3, stride)
        pads = (t, left, b, r)
    np.testing.assert_allclose(ref["y"], conv_direct(x, w, stride, pads), atol=1e-4)
    np.testing.assert_allclose(got[0], ref["y"], atol=1e-4)


def test_resize_bilinear_half_pixel_matches_opencv(tmp_path):
    x = RNG.normal(size=(1, 5, 7, 3)).astype(np.float32)
    size = np.array([10, 14], np.int32)
    node = {
        "name": "y",
        "op": "ResizeBilinear",
        "input": ["x", "size"],
        "attr": {"half_pixel_centers": {"b": True}, "align_corners": {"b": False}},
    }
    ref, got = run_both(write_model(tmp_path, x.shape, [node], {"size": size}, ["y"]), x)
    want = cv2.resize(x[0], (14, 10), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(ref["y"][0], want, atol=1e-5)
    np.testing.assert_allclose(got[0], ref["y"], atol=1e-5)


def test_pad_maxpool_leaky_sigmoid_concat_split_reshape_transpose(tmp_path):
    x = RNG.normal(size=(1, 6, 6, 4)).astype(np.float32)
    consts = {
        "pads": np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32),
        "value": np.array(-1.5, np.float32),
        "axis": np.array(3, np.int32),
        "sizes": np.array([3, 5], np.int32),
        "perm": np.array([0, 3, 1, 2], np.int32),
        "shape": np.array([1, -1, 8], np.int32),
    }
    nodes = [
        {"name": "p", "op": "PadV2", "input": ["x", "pads", "value"], "attr": {}},
        {
            "name": "m",
            "op": "MaxPool",
            "input": ["p"],
            "attr": {
                "ksize": _ints(1, 3, 3, 1),
                "strides": _ints(1, 2, 2, 1),
                "padding": _s("VALID"),
            },
        },
        {"name": "l", "op": "LeakyRelu", "input": ["m"], "attr": {"alpha": {"f": 0.1}}},
        {"name": "s", "op": "Sigmoid", "input": ["m"], "attr": {}},
        {"name": "c", "op": "ConcatV2", "input": ["l", "s", "axis"], "attr": {}},
        {"name": "sp", "op": "SplitV", "input": ["c", "sizes", "axis"], "attr": {}},
        {"name": "t", "op": "Transpose", "input": ["sp:1", "perm"], "attr": {}},
        {"name": "r", "op": "Reshape", "input": ["c", "shape"], "attr": {}},
        {"name": "o", "op": "AddV2", "input": ["sp", "sp"], "attr": {}},
    ]
    ref, got = run_both(write_model(tmp_path, x.shape, nodes, consts, ["o", "r", "t"]), x)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-1.5)
    pooled = np.stack(
        [
            [padded[0, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].max(axis=(0, 1)) for j in range(3)]
            for i in range(3)
        ]
    )[None]
    leaky = np.where(pooled > 0, pooled, 0.1 * pooled)
    np.testing.assert_allclose(ref["o"], 2 * leaky[..., :3], atol=1e-6)
    assert ref["t"].shape == (1, 5, 3, 3)
    assert ref["r"].shape == (1, 9, 8)
    for name, arr in zip(["o", "r", "t"], got, strict=True):
        np.testing.assert_allclose(arr, ref[name], atol=1e-5)


def test_float16_shards_are_widened_and_constants_folded(tmp_path):
    """A quantised weight comes back as float32 with float16 precision; shape arithmetic
    (SparseToDense + AddV2 on constants, as the NanoDet graph has) is folded away."""
    x = RNG.normal(size=(1, 2, 2, 3)).astype(np.float32)
    bias = np.array([0.1, 1000.3, -2.7], np.float32)
    consts = {
        "bias": bias,
        "idx": np.zeros((0, 1), np.int32),
        "dense_shape": np.array([2], np.int32),
        "vals": np.zeros((0,), np.int32),
        "zero": np.array(0, np.int32),
        "base": np.array([1, 12], np.int32),
    }
    nodes = [
        {"name": "std", "op": "SparseToDense", "input": ["idx", "dense_shape", "vals", "zero"]},
        {"name": "shape", "op": "AddV2", "input": ["base", "std"], "attr": {}},
        {"name": "a", "op": "Add", "input": ["x", "bias"], "attr": {}},
        {"name": "y", "op": "Reshape", "input": ["a", "shape"], "attr": {}},
    ]
    graph = tfjs.load_graph(write_model(tmp_path, x.shape, nodes, consts, ["y"], float16=True))
    assert [n.op for n in graph.nodes] == ["Placeholder", "Add", "Reshape"]
    assert graph.consts["bias"].dtype == np.float32
    np.testing.assert_array_equal(graph.consts["bias"], bias.astype(np.float16))
    ref, got = run_both(tmp_path / "model.json", x)
    np.testing.assert_allclose(got[0], ref["y"], atol=1e-4)
    assert got[0].shape == (1, 12)


def test_unsupported_op_is_refused_by_name(tmp_path):
    nodes = [{"name": "y", "op": "Softplus", "input": ["x"], "attr": {}}]
    with pytest.raises(ModelError, match="unsupported TF ops Softplus"):
        tfjs.load_graph(write_model(tmp_path, (1, 2), nodes, {}, ["y"]))


def test_truncated_shard_is_refused(tmp_path):
    path = write_model(
        tmp_path, (1, 2), [], {"w": np.ones((4, 4), np.float32)}, ["x"], float16=False
    )
    (tmp_path / "shard.bin").write_bytes(b"\0" * 10)
    with pytest.raises(ModelError, match="truncated"):
        tfjs.load_graph(path)
