"""Learned attribute heads: never-list, save/load, training choices, track aggregation, text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from crowdsight.core.errors import InputError
from crowdsight.core.types import CLASS_NAME, Frame
from crowdsight.describe import TrackDescriber, peta
from crowdsight.describe.colours import COLOUR_NAMES, N_COLOURS
from crowdsight.describe.describer import crop_quality
from crowdsight.describe.heads import (
    HEADS_FILE,
    MANIFEST_FILE,
    AttributeHeads,
    check_labels,
    read_manifest,
)

#: Words of labels about the person themselves (PETA has them; crowdsight never ships them).
NEVER = {
    "gender", "male", "female", "personal", "age", "less30", "hair", "bald", "face", "skin",
    "body", "footwear", "sunglasses", "ethnicity", "race",
}  # fmt: skip


def test_shipped_heads_contain_no_personal_label() -> None:
    heads = AttributeHeads.load()
    assert set(heads.binary_names) <= set(peta.BINARY_NAMES)
    for name in heads.binary_names:
        words = set(name.lower().split("_"))
        assert not words & NEVER, name
    assert heads.upper_w.shape == (N_COLOURS, heads.mean.shape[0])
    manifest = read_manifest()
    assert manifest["labels"]["binary"] == list(heads.binary_names)
    assert "GRID" not in manifest["data"] and "CAVIAR4REID" not in manifest["data"]
    assert HEADS_FILE.stat().st_size < 2_000_000
    assert MANIFEST_FILE.is_file()


@pytest.mark.parametrize("bad", ["personalMale", "hairLong", "age_band", "face_shape"])
def test_never_list_labels_are_refused(bad: str) -> None:
    with pytest.raises(InputError, match="never-list"):
        check_labels((bad,))


def test_peta_reader_keeps_clothing_attributes_only(tmp_path: Path) -> None:
    label = tmp_path / "X" / "archive" / "Label.txt"
    label.parent.mkdir(parents=True)
    label.write_text(
        "7 upperBodyRed lowerBodyBlue personalFemale hairLong upperBodyShortSleeve "
        "lowerBodyJeans accessoryHat carryingBackpack carryingSuitcase footwearBlack\n"
    )
    (label.parent / "7_a.png").write_bytes(b"")
    (item,) = peta.iter_subset(tmp_path, "X")
    assert item.attributes == {"short_sleeves", "jeans", "hat", "backpack", "luggage"}
    assert (item.upper, item.lower) == ({"red"}, {"blue"})
    assert peta.subsets_in(tmp_path) == ("X",)


def _toy_heads(d: int, k: int = 2) -> AttributeHeads:
    """Heads whose upper colour follows feature 0, lower colour feature 1, 'hat' feature 2."""
    up = np.zeros((N_COLOURS, d), np.float32)
    up[COLOUR_NAMES.index("red"), 0] = 8.0
    low = np.zeros((N_COLOURS, d), np.float32)
    low[COLOUR_NAMES.index("blue"), 1] = 8.0
    bw = np.zeros((k, d), np.float32)
    bw[0, 2] = 8.0
    return AttributeHeads(
        feature_version="toy",
        mean=np.zeros(d, np.float32),
        scale=np.ones(d, np.float32),
        upper_w=up,
        upper_b=np.zeros(N_COLOURS, np.float32),
        lower_w=low,
        lower_b=np.zeros(N_COLOURS, np.float32),
        binary_names=("hat", "backpack")[:k],
        binary_w=bw,
        binary_b=np.full(k, -4.0, np.float32),
        decision=np.full(k, 0.3, np.float32),
        text=np.full(k, 0.6, np.float32),
        colour_text=np.array([0.5, 0.5], np.float32),
        accuracy_decision=np.full(k, 0.5, np.float32),
        carrying_decision=0.4,
        carrying_text=0.6,
    )


def test_save_load_round_trip_and_probabilities(tmp_path: Path) -> None:
    heads = _toy_heads(4)
    heads.save(tmp_path / "h.npz")
    back = AttributeHeads.load(tmp_path / "h.npz")
    x = np.array([[1, 0, 1, 0], [0, 1, 0, 0]], np.float32)
    a, b = heads.predict(x), back.predict(x)
    np.testing.assert_allclose(a.upper, b.upper, atol=1e-3)
    np.testing.assert_allclose(a.upper.sum(axis=1), 1, atol=1e-5)
    assert a.upper[0].argmax() == COLOUR_NAMES.index("red")
    assert a.binary[0, 0] > 0.9 > 0.1 > a.binary[1, 0]
    with pytest.raises(InputError, match="columns"):
        heads.predict(np.zeros((1, 3), np.float32))


class _FeatureStub:
    """Stands in for the CNN: feature row = the mean RGB of the crop / 255, plus a 0."""

    def extract(self, crops: list[np.ndarray]) -> np.ndarray:
        return np.stack([np.r_[c.reshape(-1, 3).mean(axis=0) / 255, 0] for c in crops]).astype(
            np.float32
        )


def _dets(box: list[float], conf: float) -> sv.Detections:
    return sv.Detections(
        xyxy=np.array([box], np.float32),
        confidence=np.array([conf], np.float32),
        class_id=np.zeros(1, int),
        tracker_id=np.array([3]),
        data={CLASS_NAME: np.array(["person"])},
    )


def test_track_vote_is_weighted_by_quality_and_text_states_only_confident_attributes() -> None:
    d = TrackDescriber(heads=_toy_heads(4), features=_FeatureStub())
    red = np.zeros((300, 300, 3), np.uint8)
    red[...] = (255, 0, 255)  # feature 0 (R) and 2 (B) high: red top, hat
    green = np.zeros_like(red)
    green[...] = (0, 255, 0)  # feature 1 high: blue legwear
    box = [50.0, 20.0, 110.0, 200.0]
    # two confident, tall red frames outweigh one low-confidence green frame
    for i, (img, conf) in enumerate([(red, 0.9), (red, 0.9), (green, 0.2)]):
        d.describe(Frame("cam", i, i / 10, img), _dets(box, conf))
    desc = d.descriptions()[3]
    assert desc.upper_colour == "red"
    assert desc.text.startswith("person: red top (0.")
    assert "hat (0." in desc.text
    assert "backpack" not in desc.text  # below its text threshold
    assert 0.0 <= desc.confidences["backpack"] < 0.6
    assert desc.frames == 3
    assert desc.fields["stated"][0] == "upper:red"


def test_crop_quality() -> None:
    assert crop_quality(256, 1.0, False) == 1.0
    assert crop_quality(64, 1.0, False) == pytest.approx(0.5)
    assert crop_quality(256, 0.5, True) == pytest.approx(0.25)


def test_training_chooses_by_grouped_cv_on_separable_toy_data() -> None:
    from crowdsight.describe.training import train_heads

    rng = np.random.default_rng(0)
    items, rows = [], []
    for ident in range(60):
        hat = ident % 3 == 0
        colour = COLOUR_NAMES[ident % 2]  # black / blue
        for k in range(3):
            items.append(
                peta.PetaItem(
                    "toy", str(ident), Path(f"{ident}_{k}.png"), frozenset({colour}),
                    frozenset({colour}), attributes=frozenset({"hat"} if hat else set()),
                )
            )  # fmt: skip
            rows.append(np.r_[float(hat), float(ident % 2), rng.normal(0, 0.3, 6)])
    heads, report = train_heads(
        items, np.asarray(rows, np.float32), n_deep=4, binary_names=("hat",)
    )
    assert report.n_identities == 60
    assert report.cv["hat"]["mA"] > 0.9
    assert report.cv["upper_colour"]["accuracy"] > 0.9
    assert heads.binary_w.shape == (1, 8)
    with pytest.raises(InputError):
        train_heads(items, np.asarray(rows, np.float32), n_deep=4, binary_names=("hairLong",))


def _scene_bound_luggage(subsets: tuple[str, ...]) -> tuple[list[peta.PetaItem], np.ndarray]:
    """Crops whose "luggage" goes with the place (an airport), not with anything on the person."""
    rng = np.random.default_rng(1)
    items, rows = [], []
    for ident in range(90):
        sub = subsets[ident % len(subsets)] if len(subsets) > 1 else subsets[0]
        airport = ident % 3 == 0  # a third of the identities were filmed at the airport
        luggage = bool(rng.random() < (0.8 if airport else 0.1))
        for k in range(3):
            items.append(
                peta.PetaItem(
                    sub, str(ident), Path(f"{ident}_{k}.png"),
                    frozenset({COLOUR_NAMES[ident % 2]}), frozenset({COLOUR_NAMES[ident % 2]}),
                    attributes=frozenset({"luggage"} if luggage else set()),
                )
            )  # fmt: skip
            rows.append(np.r_[float(airport), rng.normal(0, 0.3, 7)])
    return items, np.asarray(rows, np.float32)


def test_text_thresholds_must_hold_on_subsets_held_out_whole() -> None:
    from crowdsight.describe.training import train_heads

    # One subset: the grouped folds see the airport in training and believe the head.
    items, rows = _scene_bound_luggage(("one",))
    heads, report = train_heads(items, rows, n_deep=4, binary_names=("luggage",))
    assert heads.text[0] < 1.0
    # The same crops from three places, the airport being one: held out whole, the airport's
    # luggage is never predicted from the others, so the description never states it.
    airport_items = [
        peta.PetaItem(
            "airport" if int(it.identity) % 3 == 0 else f"street{int(it.identity) % 2}",
            it.identity, it.image, it.upper, it.lower, attributes=it.attributes,
        )
        for it in items
    ]  # fmt: skip
    heads, report = train_heads(airport_items, rows, n_deep=4, binary_names=("luggage",))
    assert heads.text[0] == 1.0
    assert report.cv["luggage"]["mA"] > 0.7  # the grouped figures still see the scene cue


def test_colour_c_is_chosen_on_subsets_held_out_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    from crowdsight.describe import training

    seen: list[int] = []
    real = training._cv_colour

    def spy(x: np.ndarray, truth: np.ndarray, folds: list[np.ndarray], *a: object) -> object:
        seen.append(len(folds))
        return real(x, truth, folds, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(training, "_cv_colour", spy)
    items, rows = _scene_bound_luggage(("a", "b", "c"))
    training.train_heads(items, rows, n_deep=4, binary_names=("luggage",))
    assert seen == [3, 3]  # upper and lower: one fold per subset
    seen.clear()
    items, rows = _scene_bound_luggage(("one",))
    training.train_heads(items, rows, n_deep=4, binary_names=("luggage",))
    assert seen == [training.N_FOLDS, training.N_FOLDS]  # one subset: identity-grouped folds


def test_gray_world_half_of_colour_features_ignores_a_colour_cast() -> None:
    from crowdsight.describe.features import (
        FEATURE_WH,
        colour_features,
        gray_world,
        n_colour_features,
    )

    rng = np.random.default_rng(0)
    w, h = FEATURE_WH
    crop = rng.integers(40, 160, (h, w, 3)).astype(np.uint8)
    crop[30:70, 16:48] = (150, 30, 30)  # a red top on a grey scene
    cast = np.clip(crop * np.array([0.75, 0.9, 1.3]), 0, 255).astype(np.uint8)  # bluish light
    assert np.allclose(gray_world(cast).reshape(-1, 3).mean(0), cast.mean(), atol=2)
    plain, tinted = colour_features(crop), colour_features(cast)
    assert plain.shape == (n_colour_features(),)
    half = n_colour_features() // 2
    raw_gap = float(np.abs(plain[:half] - tinted[:half]).sum())
    gw_gap = float(np.abs(plain[half:] - tinted[half:]).sum())
    assert gw_gap < 0.5 * raw_gap  # the corrected half barely sees the cast


def _learned(
    track_id: int, text: str, stated: list[str], conf: dict[str, float]
) -> dict[str, object]:
    return {
        "track_id": track_id,
        "text": text,
        "fields": {"stated": stated, "confidences": conf},
        "ts_s": float(track_id),
    }


def test_description_search_uses_stated_labels_and_ranks_by_confidence(tmp_path: Path) -> None:
    from crowdsight.store.descriptions import match_score
    from tests.api.support import open_store

    with open_store(f"sqlite:///{tmp_path / 'cs.db'}") as store:
        store.record_descriptions(
            "cam",
            [
                _learned(1, "person: red top (0.55), jeans (0.80)", ["upper:red", "jeans"],
                         {"upper:red": 0.55, "jeans": 0.8}),
                _learned(2, "person: red top (0.93), carrying a backpack (0.71)",
                         ["upper:red", "backpack"], {"upper:red": 0.93, "backpack": 0.71}),
                _learned(3, "person: black top (0.90), red legwear (0.88)",
                         ["upper:black", "lower:red"], {"upper:black": 0.9, "lower:red": 0.88}),
            ],
        )  # fmt: skip
        red_tops = store.query_descriptions(q="red top")
        assert [d.track_id for d in red_tops] == [2, 1]  # most confident first; 3 is red below
        assert [d.track_id for d in store.query_descriptions(q="bag")] == [2]
        assert store.query_descriptions(q="red top", min_confidence=0.9)[0].track_id == 2
        assert len(store.query_descriptions(q="red top", min_confidence=0.95)) == 0
        assert [d.track_id for d in store.query_descriptions(q="red")] == [2, 3, 1]
    assert match_score(["grey", "van"], "vehicle: grey van", {}) == 1.0
    assert match_score(["bus"], "vehicle: grey van", {}) is None


def test_person_mask_keeps_the_background_out_of_the_colour_statistics() -> None:
    from crowdsight.describe.features import (
        FEATURE_WH,
        MIN_MASKED_WEIGHT,
        colour_features,
        n_colour_features,
    )
    from crowdsight.describe.pose import PersonMask

    w, h = FEATURE_WH
    blue_wall = np.zeros((h, w, 3), np.uint8)
    blue_wall[:] = (30, 60, 200)
    crop = blue_wall.copy()
    crop[20:120, 24:40] = (200, 30, 30)  # a thin person in red: the wall fills most of each band
    person = np.zeros((h, w), np.float32)
    person[20:120, 24:40] = 1.0
    red_only = blue_wall.copy()
    red_only[:] = (200, 30, 30)

    raw = slice(0, n_colour_features() // 2)  # the as-seen half (gray world sees the wall too)
    masked, unmasked = colour_features(crop, PersonMask(person, 1.0)), colour_features(crop)
    target = colour_features(red_only)
    # With the mask the statistics are those of an all-red crop; without, the wall weighs in.
    assert np.abs(masked[raw] - target[raw]).sum() < 0.1 * np.abs(unmasked[raw] - target[raw]).sum()
    # A mask that misses the person (under MIN_MASKED_WEIGHT of the band) is not trusted.
    stray = np.zeros((h, w), np.float32)
    stray[:, 0] = MIN_MASKED_WEIGHT / 10
    assert np.allclose(colour_features(crop, PersonMask(stray, 1.0)), unmasked)


def test_body_rows_set_the_clothing_bands() -> None:
    from crowdsight.describe.colours import LEGS, TORSO
    from crowdsight.describe.features import (
        FEATURE_WH,
        body_regions,
        colour_features,
        n_colour_features,
    )
    from crowdsight.describe.pose import PersonMask

    w, h = FEATURE_WH
    # A person framed loosely: the box runs from y 0 to 128, the person from 60 down; the fixed
    # torso band (26-64) is mostly the grey wall above them.
    crop = np.full((h, w, 3), 128, np.uint8)
    crop[68:96] = (200, 30, 30)  # red top
    crop[96:126] = (30, 30, 200)  # blue trousers
    upper, lower = body_regions((68.0, 96.0, 126.0), h)
    assert (round(upper.y0 * h), round(upper.y1 * h)) == (68, 96)
    assert (round(lower.y0 * h), round(lower.y1 * h)) == (96, 126)
    assert body_regions(None, h) == (TORSO, LEGS)
    assert body_regions((60.0, 62.0, 200.0), h)[0] == TORSO  # a 2 px torso is not trusted
    assert round(body_regions((60.0, 70.0, 200.0), h)[1].y1 * h) == h  # clipped to the crop
    everywhere = PersonMask(np.ones((h, w), np.float32), 1.0)
    fixed = colour_features(crop, everywhere)
    posed = colour_features(crop, PersonMask(everywhere.mask, 1.0, (68.0, 96.0, 126.0)))
    votes = slice(n_colour_features() // 4 - 11, n_colour_features() // 4)  # raw half, upper votes
    from crowdsight.describe.colours import COLOUR_NAMES

    red = COLOUR_NAMES.index("red")
    assert posed[votes][red] > 0.9 > fixed[votes][red] + 0.4


def test_deep_features_pool_over_the_person_mask() -> None:
    from crowdsight.describe.features import BANDS, FEATURE_WH, _band_pool

    w, h = FEATURE_WH
    fmap = np.zeros((1, 2, 16, 8), np.float32)
    fmap[:, :, :, :4] = 1.0  # the person's half of every row
    fmap[:, :, :, 4:] = 5.0  # a bright wall beside them
    person = np.zeros((1, h, w), np.float32)
    person[:, :, : w // 2] = 1.0
    plain, masked = _band_pool(fmap), _band_pool(fmap, person)
    n_bands = len(BANDS)
    assert np.allclose(plain[0, : 2 * n_bands], 3.0) and np.allclose(plain[0, 2 * n_bands :], 5.0)
    assert np.allclose(masked[0], 1.0)  # band means and the max see only the person
    # A mask that holds almost nothing is not trusted: plain pooling.
    assert np.allclose(_band_pool(fmap, person * 0.01), plain)
