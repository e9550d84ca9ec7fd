"""Colour naming, region voting and per-track descriptions (synthetic crops, no data)."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from crowdsight.core.types import CLASS_NAME, Frame
from crowdsight.describe import Description, TrackDescriber
from crowdsight.describe.colours import (
    COLOUR_NAMES,
    LEGS,
    TORSO,
    Region,
    name_pixels,
    region_colour,
    to_hsv,
)


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((200, 20, 20), "red"),
        ((20, 30, 200), "blue"),
        ((20, 150, 30), "green"),
        ((245, 245, 245), "white"),
        ((128, 128, 128), "grey"),
        ((10, 10, 10), "black"),
        ((250, 220, 30), "yellow"),
        ((255, 140, 0), "orange"),
        ((110, 65, 30), "brown"),
        ((250, 160, 200), "pink"),
        ((120, 40, 160), "purple"),
    ],
)
def test_clean_colours_get_their_names(rgb: tuple[int, int, int], name: str) -> None:
    px = np.array([rgb], np.uint8)
    assert COLOUR_NAMES[int(name_pixels(to_hsv(px))[0])] == name


def _person(upper: tuple[int, int, int], lower: tuple[int, int, int], bg=(90, 160, 90)):
    crop = np.zeros((120, 50, 3), np.uint8)
    crop[:] = bg
    crop[20:60, 12:38] = upper  # torso, centre columns only; background at the sides
    crop[60:110, 14:36] = lower
    return crop


def test_regions_pick_torso_and_legs_despite_background() -> None:
    crop = _person((200, 20, 20), (20, 30, 200))
    assert region_colour(crop, TORSO).name == "red"
    assert region_colour(crop, LEGS).name == "blue"


def test_empty_region_raises() -> None:
    with pytest.raises(ValueError):
        region_colour(np.zeros((0, 10, 3), np.uint8), Region(0.2, 0.5))


def _frame(image: np.ndarray, index: int = 0) -> Frame:
    return Frame("cam", index, index / 10, image)


def _dets(boxes: list[list[float]], names: list[str], ids: list[int]) -> sv.Detections:
    return sv.Detections(
        xyxy=np.array(boxes, np.float32),
        confidence=np.ones(len(boxes), np.float32),
        class_id=np.zeros(len(boxes), int),
        tracker_id=np.array(ids),
        data={CLASS_NAME: np.array(names)},
    )


def test_track_votes_survive_one_bad_frame_and_text_has_no_traits() -> None:
    good = np.zeros((200, 200, 3), np.uint8)
    good[10:130, 20:70] = _person((10, 10, 10), (128, 128, 128))
    bad = good.copy()
    bad[10:130, 20:70] = _person((200, 20, 20), (200, 20, 20))
    d = TrackDescriber()
    dets = _dets([[20, 10, 70, 130]], ["person"], [7])
    for i, img in enumerate([good, good, bad, good]):
        d.describe(_frame(img, i), dets)
    desc = d.descriptions()[7]
    assert isinstance(desc, Description)
    assert (desc.upper_colour, desc.lower_colour) == ("black", "grey")
    assert desc.text == "person: black top, grey trousers"
    assert desc.carrying is None  # people-only detector: carrying not available
    assert desc.frames == 4


def test_carried_bag_needs_overlap_and_shared_motion() -> None:
    d = TrackDescriber()
    img = np.full((300, 400, 3), 200, np.uint8)
    for i in range(4):
        dx = 10 * i
        dets = _dets(
            [
                [50 + dx, 20, 100 + dx, 140],  # walking person
                [85 + dx, 60, 105 + dx, 100],  # backpack moving with them
                [300, 100, 330, 140],  # suitcase standing far away
            ],
            ["person", "backpack", "suitcase"],
            [1, 2, 3],
        )
        d.describe(_frame(img, i), dets)
    desc = d.descriptions()[1]
    assert desc.carrying == ("backpack",)
    assert "carrying a backpack" in desc.text


def test_bag_left_behind_is_not_attributed() -> None:
    d = TrackDescriber(carry_min_share=0.6)
    img = np.full((300, 400, 3), 200, np.uint8)
    for i in range(5):
        dx = 25 * i
        dets = _dets(
            [[50 + dx, 20, 100 + dx, 140], [70, 60, 95, 100]],  # bag stays, person walks
            ["person", "handbag"],
            [1, 2],
        )
        d.describe(_frame(img, i), dets)
    assert d.descriptions()[1].carrying == ()


def test_vehicle_type_and_colour_and_reset() -> None:
    img = np.zeros((200, 300, 3), np.uint8)
    img[50:150, 50:250] = (245, 245, 245)
    d = TrackDescriber()
    d.describe(_frame(img), _dets([[50, 50, 250, 150]], ["bus"], [4]))
    assert d.descriptions()[4].text == "vehicle: white bus"
    d.reset()
    assert d.descriptions() == {}
