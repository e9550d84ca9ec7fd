"""The CSRNet ONNX graph computes what the layer plan says (checked against numpy)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from crowdsight.models.converters.csrnet import IMAGENET_MEAN, IMAGENET_STD, build_onnx, layer_plan


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, dilation: int) -> np.ndarray:
    """Reference 'same' conv (C×H×W), stride 1, zero padding dilation·(k//2)."""
    k = w.shape[-1]
    pad = dilation * (k // 2)
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    span = dilation * (k - 1) + 1
    win = sliding_window_view(xp, (span, span), axis=(1, 2))[..., ::dilation, ::dilation]
    return np.einsum("chwij,ocij->ohw", win, w, optimize=True) + b[:, None, None]


def maxpool2(x: np.ndarray) -> np.ndarray:
    c, h, w = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))


def reference(image: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
    mean = np.array(IMAGENET_MEAN, np.float64)[:, None, None] * 255
    std = np.array(IMAGENET_STD, np.float64)[:, None, None] * 255
    x = (image.astype(np.float64) - mean) / std
    for op, prefix, dil in layer_plan():
        if op == "pool":
            x = maxpool2(x)
        else:
            x = conv2d(x, weights[f"{prefix}.weight"], weights[f"{prefix}.bias"], dil)
            if op == "conv":
                x = np.maximum(x, 0)
    return x[0]


def tiny_weights(rng: np.random.Generator, width: int = 4) -> dict[str, np.ndarray]:
    """A narrow CSRNet (same layers, `width` channels) with random weights."""
    out: dict[str, np.ndarray] = {}
    cin = 3
    for op, prefix, _ in layer_plan():
        if op == "pool":
            continue
        cout, k = (1, 1) if op == "head" else (width, 3)
        out[f"{prefix}.weight"] = rng.normal(0, 0.5, (cout, cin, k, k)).astype(np.float32)
        out[f"{prefix}.bias"] = rng.normal(0, 0.1, (cout,)).astype(np.float32)
        cin = cout
    return out


@pytest.mark.parametrize(("h", "w"), [(32, 32), (40, 56), (64, 24)])
def test_onnx_matches_numpy_reference(h: int, w: int) -> None:
    rng = np.random.default_rng(h * 100 + w)
    weights = tiny_weights(rng)
    model = build_onnx(weights)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    image = rng.uniform(0, 255, (3, h, w)).astype(np.float32)
    got = sess.run(["density"], {"image": image[None]})[0][0, 0]
    want = reference(image, weights)
    assert got.shape == (h // 8, w // 8)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * (1 + np.abs(want).max()))


def test_layer_plan_is_csrnet() -> None:
    plan = layer_plan()
    assert sum(op == "conv" for op, _, _ in plan) == 16  # 10 front-end + 6 back-end
    assert sum(op == "pool" for op, _, _ in plan) == 3
    assert [d for op, _, d in plan if op == "conv"][-6:] == [2] * 6
    assert plan[-1][0] == "head"
