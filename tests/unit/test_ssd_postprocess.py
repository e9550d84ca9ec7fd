"""SSD pieces of the people detector: graph parsing, anchors, box coding, NMS, resizing, tiling."""

from __future__ import annotations

import numpy as np
import pytest

from crowdsight.core.types import CLASS_NAME, Detections, ImageRGB
from crowdsight.models.converters.ssdlite import (
    AnchorLayer,
    TfGraph,
    _graphdef_class,
    evaluate_constant_subgraph,
    grid_anchors,
    same_pads,
)
from crowdsight.perception.detector import (
    decode_boxes,
    encode_boxes,
    make_detections,
    ssd_postprocess,
    tf1_resize_bilinear,
)
from crowdsight.perception.slicing import (
    SliceSettings,
    drop_cut_boxes,
    sliced_detect,
    tile_origins,
)

#: The SSDLite-MobileNetV2 300×300 layout: 6 feature maps, 3 anchors on the first, 6 after.
SSD_GRIDS = (19, 10, 5, 3, 2, 1)
SSD_SCALES = (0.2, 0.35, 0.5, 0.65, 0.8, 0.95, 1.0)


def ssd_layers() -> list[AnchorLayer]:
    layers = [AnchorLayer((19, 19), (0.1, 0.2, 0.2), (1.0, 2.0, 0.5))]
    for i, g in enumerate(SSD_GRIDS[1:], start=1):
        s, s_next = SSD_SCALES[i], SSD_SCALES[i + 1]
        layers.append(
            AnchorLayer((g, g), (s,) * 5 + (float(np.sqrt(s * s_next)),), (1, 2, 0.5, 3, 1 / 3, 1))
        )
    return layers


def test_anchor_count_and_shape() -> None:
    anchors = grid_anchors(ssd_layers())
    assert anchors.shape == (19 * 19 * 3 + (100 + 25 + 9 + 4 + 1) * 6, 4) == (1917, 4)
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    assert np.all((centres > 0) & (centres < 1))
    assert np.all(anchors[:, 2:] > anchors[:, :2])


def test_anchor_order_is_row_column_anchor() -> None:
    anchors = grid_anchors(ssd_layers())
    first_cell, next_cell = anchors[0:3], anchors[3:6]
    np.testing.assert_allclose((first_cell[:, 0] + first_cell[:, 2]) / 2, 0.5 / 19, rtol=1e-5)
    np.testing.assert_allclose((next_cell[:, 1] + next_cell[:, 3]) / 2, 1.5 / 19, rtol=1e-5)
    # aspect ratio 2 on anchor 1: width twice the height
    h, w = first_cell[1, 2] - first_cell[1, 0], first_cell[1, 3] - first_cell[1, 1]
    assert w / h == pytest.approx(2.0, rel=1e-5)


@pytest.mark.parametrize("scales", [(10.0, 10.0, 5.0, 5.0), (1.0, 1.0, 1.0, 1.0)])
def test_decode_inverts_encode(scales: tuple[float, ...]) -> None:
    rng = np.random.default_rng(0)
    anchors = grid_anchors(ssd_layers())
    centre = rng.uniform(0.1, 0.9, (len(anchors), 2))
    size = rng.uniform(0.02, 0.5, (len(anchors), 2))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)
    codes = encode_boxes(boxes, anchors, scales)
    np.testing.assert_allclose(decode_boxes(codes, anchors, scales), boxes, atol=1e-5)


def test_zero_codes_decode_to_anchors() -> None:
    anchors = grid_anchors(ssd_layers())
    np.testing.assert_allclose(decode_boxes(np.zeros_like(anchors), anchors), anchors, atol=1e-6)


def test_postprocess_nms_threshold_and_clip() -> None:
    anchors = np.array(
        [[0.1, 0.1, 0.5, 0.3], [0.11, 0.1, 0.51, 0.3], [0.6, 0.7, 1.2, 0.9], [0.0, 0.0, 0.1, 0.1]],
        np.float32,
    )
    codes = np.zeros_like(anchors)
    scores = np.array([0.9, 0.8, 0.7, 0.01], np.float32)
    boxes, conf = ssd_postprocess(
        codes, scores, anchors, conf_threshold=0.3, nms_iou=0.6, max_detections=10
    )
    np.testing.assert_allclose(conf, [0.9, 0.7])  # duplicate suppressed, low score dropped
    np.testing.assert_allclose(boxes[1], [0.6, 0.7, 1.0, 0.9], atol=1e-6)  # clipped
    _, capped = ssd_postprocess(
        codes, scores, anchors, conf_threshold=0.3, nms_iou=0.6, max_detections=1
    )
    assert capped.tolist() == pytest.approx([0.9])


@pytest.mark.parametrize(
    ("size", "k", "stride", "expected"),
    [
        (300, 3, 2, (0, 1, 150)),
        (150, 3, 1, (1, 1, 150)),
        (19, 3, 2, (1, 1, 10)),
        (1, 3, 2, (1, 1, 1)),
    ],
)
def test_tf_same_padding(size: int, k: int, stride: int, expected: tuple[int, int, int]) -> None:
    assert same_pads(size, k, stride, 1) == expected


def test_tf1_resize_samples_without_half_pixel_offset() -> None:
    img = np.arange(16, dtype=np.uint8).reshape(4, 4, 1).repeat(3, axis=2)
    out = tf1_resize_bilinear(img, (2, 2))
    assert out[:, :, 0].tolist() == [[0.0, 2.0], [8.0, 10.0]]  # pixels 0 and 2 of each axis


@pytest.mark.parametrize(("in_hw", "out_hw"), [((1080, 1920), (300, 300)), ((37, 50), (300, 300))])
def test_tf1_resize_matches_the_formula(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> None:
    img = np.random.default_rng(1).integers(0, 256, (*in_hw, 3), dtype=np.uint8)
    f = img.astype(np.float64)

    def axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # TF1 computes source positions in float32
        pos = (np.arange(n_out, dtype=np.float32) * np.float32(n_in / n_out)).astype(np.float64)
        lo = np.floor(pos).astype(int)
        return lo, np.minimum(lo + 1, n_in - 1), (pos - lo)[:, None]

    y0, y1, fy = axis(in_hw[0], out_hw[0])
    x0, x1, fx = axis(in_hw[1], out_hw[1])
    top = f[y0][:, x0] + (f[y0][:, x1] - f[y0][:, x0]) * fx
    bottom = f[y1][:, x0] + (f[y1][:, x1] - f[y1][:, x0]) * fx
    expected = top + (bottom - top) * fy[:, :, None]
    np.testing.assert_allclose(tf1_resize_bilinear(img, out_hw), expected, atol=1e-3)


def _graph_bytes() -> bytes:
    """A two-node GraphDef written with our own message classes (as TF lays them out)."""
    g = _graphdef_class()()
    for name, values in (("a", [1.0, 2.0, 3.0]), ("b", [10.0])):
        node = g.node.add(name=name, op="Const")
        attr = node.attr.add(key="value")
        attr.value.tensor.dtype = 1
        attr.value.tensor.tensor_shape.dim.add(size=len(values))
        attr.value.tensor.float_val.extend(values)
    add = g.node.add(name="sum", op="Mul", input=["a", "b"])
    add.attr.add(key="T").value.type = 1
    g.node.add(name="out", op="Identity", input=["sum"])
    return bytes(g.SerializeToString())


def test_graphdef_parsing_and_constant_evaluation() -> None:
    graph = TfGraph.from_bytes(_graph_bytes())
    assert graph.const("a").tolist() == [1.0, 2.0, 3.0]
    assert graph.resolve("out").name == "sum"
    assert evaluate_constant_subgraph(graph, "out").tolist() == [10.0, 20.0, 30.0]


def _bright_square_detector(image: ImageRGB) -> Detections:
    """Finds the bounding box of white pixels (a stand-in model with exact answers)."""
    ys, xs = np.nonzero(image[:, :, 0] > 200)
    if len(xs) == 0:
        return make_detections(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, int), ["person"]
        )
    box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    return make_detections(box, np.array([0.9], np.float32), np.array([0]), ["person"])


def test_sliced_detect_maps_tiles_back_and_merges_duplicates() -> None:
    image = np.zeros((1080, 1920, 3), np.uint8)
    image[600:640, 1000:1030] = 255  # lies in the overlap of several tiles
    dets = sliced_detect(_bright_square_detector, image, SliceSettings(full_frame=True))
    assert len(dets) == 1
    np.testing.assert_allclose(dets.xyxy[0], [1000, 600, 1030, 640])
    assert dets.data[CLASS_NAME].tolist() == ["person"]


def test_small_frames_are_not_sliced() -> None:
    calls: list[tuple[int, ...]] = []

    def spy(image: ImageRGB) -> Detections:
        calls.append(image.shape)
        return _bright_square_detector(image)

    sliced_detect(spy, np.zeros((480, 640, 3), np.uint8), SliceSettings(min_frame_px=800 * 600))
    assert calls == [(480, 640, 3)]


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "expected"),
    [(1920, 640, 160, [0, 480, 960, 1280]), (480, 240, 60, [0, 180, 240]), (300, 640, 0, [0])],
)
def test_tile_origins_cover_with_overlap(
    length: int, tile: int, overlap: int, expected: list[int]
) -> None:
    starts = tile_origins(length, tile, overlap)
    assert starts == expected
    assert starts[0] == 0 and min(starts[-1] + tile, length) == length


def test_boxes_cut_by_inner_tile_edges_are_dropped() -> None:
    boxes = np.array(
        [[0, 10, 50, 100], [100, 10, 150, 100], [200, 300, 320, 330], [100, 200, 150, 240]],
        np.float32,
    )
    # tile at x=320 (left edge inside the frame), bottom edge at the frame's bottom
    keep = drop_cut_boxes(boxes, (320, 840, 320, 240), (1920, 1080), margin_px=2)
    assert keep.tolist() == [False, True, False, True]


def _tf_conv_graph(rng: np.random.Generator) -> tuple[bytes, dict[str, np.ndarray]]:
    """Conv2D(stride 2) → FusedBatchNorm → Relu6 → DepthwiseConv2dNative → BiasAdd, NHWC."""
    g = _graphdef_class()()
    weights = {
        "w": rng.normal(size=(3, 3, 3, 4)).astype(np.float32),
        "gamma": rng.uniform(0.5, 2, 4).astype(np.float32),
        "beta": rng.normal(size=4).astype(np.float32),
        "mean": rng.normal(size=4).astype(np.float32),
        "var": rng.uniform(0.5, 2, 4).astype(np.float32),
        "dw": rng.normal(size=(3, 3, 4, 1)).astype(np.float32),
        "bias": rng.normal(size=4).astype(np.float32),
    }
    g.node.add(name="Preprocessor/sub", op="Placeholder")
    for name, arr in weights.items():
        t = g.node.add(name=name, op="Const").attr.add(key="value").value.tensor
        t.dtype = 1
        for d in arr.shape:
            t.tensor_shape.dim.add(size=d)
        t.tensor_content = arr.tobytes()

    def op(name: str, kind: str, inputs: list[str], **attrs: object) -> None:
        node = g.node.add(name=name, op=kind, input=inputs)
        for key, value in attrs.items():
            a = node.attr.add(key=key).value
            if isinstance(value, list):
                a.list.i.extend(value)
            elif isinstance(value, bytes):
                a.s = value
            else:
                a.f = float(value)  # type: ignore[arg-type]

    conv_attrs = {"padding": b"SAME", "data_format": b"NHWC", "dilations": [1, 1, 1, 1]}
    op("conv", "Conv2D", ["Preprocessor/sub", "w"], strides=[1, 2, 2, 1], **conv_attrs)
    op("bn", "FusedBatchNorm", ["conv", "gamma", "beta", "mean", "var"], epsilon=1e-3)
    op("relu", "Relu6", ["bn"])
    op("dconv", "DepthwiseConv2dNative", ["relu", "dw"], strides=[1, 1, 1, 1], **conv_attrs)
    op("out", "BiasAdd", ["dconv", "bias"])
    return bytes(g.SerializeToString()), weights


def _numpy_same_conv(x: np.ndarray, w: np.ndarray, stride: int, depthwise: bool) -> np.ndarray:
    """NHWC convolution with TensorFlow's SAME padding (extra pixel at the end)."""
    kh, kw = w.shape[:2]
    pads = []
    for n, k in ((x.shape[1], kh), (x.shape[2], kw)):
        total = max((-(-n // stride) - 1) * stride + k - n, 0)
        pads.append((total // 2, total - total // 2))
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))
    win = win[:, ::stride, ::stride]
    if depthwise:
        return np.einsum("nhwcij,ijc->nhwc", win, w[..., 0])
    return np.einsum("nhwcij,ijco->nhwo", win, w)


def test_tf_ops_translate_to_equivalent_onnx() -> None:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from crowdsight.models.converters.ssdlite import _OnnxBuilder

    rng = np.random.default_rng(3)
    data, wt = _tf_conv_graph(rng)
    height, width = 8, 10  # stride 2 on 8/10 needs TF's asymmetric padding
    builder = _OnnxBuilder(TfGraph.from_bytes(data), (height, width))
    out_name, out_shape = builder.tensor("out")
    assert out_shape == (1, 4, 5, 4)  # NHWC
    graph = helper.make_graph(
        builder.nodes,
        "t",
        [helper.make_tensor_value_info("x0", TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [1, 4, 4, 5])],
        initializer=builder.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    x = rng.normal(size=(1, height, width, 3)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x0": x.transpose(0, 3, 1, 2)})[0].transpose(0, 2, 3, 1)

    y = _numpy_same_conv(x, wt["w"], 2, depthwise=False)
    y = (y - wt["mean"]) / np.sqrt(wt["var"] + 1e-3) * wt["gamma"] + wt["beta"]
    y = np.clip(y, 0, 6)
    y = _numpy_same_conv(y, wt["dw"], 1, depthwise=True) + wt["bias"]
    np.testing.assert_allclose(got, y, rtol=1e-4, atol=1e-4)
