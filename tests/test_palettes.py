"""Palettes: the built-in ones match the official colours, custom ones load, bad ones are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from arseg_cli.errors import InputError
from arseg_cli.palettes import BUILTIN, CAMVID, CITYSCAPES, IGNORE_INDEX, Palette, load_palette, palette_from_json


def test_camvid_has_eleven_classes_plus_void_in_the_official_colours() -> None:
    assert CAMVID.num_classes == 12
    # Spot checks from reference/OFFICIAL.md (index: name, RGB).
    assert (CAMVID.classes[0], CAMVID.colors[0]) == ("sky", (128, 128, 128))
    assert (CAMVID.classes[3], CAMVID.colors[3]) == ("road", (128, 64, 128))
    assert (CAMVID.classes[8], CAMVID.colors[8]) == ("car", (64, 0, 128))
    assert (CAMVID.classes[10], CAMVID.colors[10]) == ("bicyclist", (0, 128, 192))
    assert (CAMVID.classes[11], CAMVID.colors[11]) == ("void", (0, 0, 0))


def test_cityscapes_has_the_nineteen_train_ids_in_the_official_colours() -> None:
    assert CITYSCAPES.num_classes == 19
    assert (CITYSCAPES.classes[0], CITYSCAPES.colors[0]) == ("road", (128, 64, 128))
    assert (CITYSCAPES.classes[1], CITYSCAPES.colors[1]) == ("sidewalk", (244, 35, 232))
    assert (CITYSCAPES.classes[11], CITYSCAPES.colors[11]) == ("person", (220, 20, 60))
    assert (CITYSCAPES.classes[13], CITYSCAPES.colors[13]) == ("car", (0, 0, 142))
    assert (CITYSCAPES.classes[18], CITYSCAPES.colors[18]) == ("bicycle", (119, 11, 32))


@pytest.mark.parametrize("palette", [CAMVID, CITYSCAPES], ids=lambda p: p.name)
def test_lut_maps_each_id_to_its_colour_and_everything_else_to_black(palette: Palette) -> None:
    lut = palette.lut()
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    np.testing.assert_array_equal(lut[: palette.num_classes], palette.colors)
    assert not lut[palette.num_classes :].any()
    assert lut[IGNORE_INDEX].tolist() == [0, 0, 0]


def test_builtins_are_found_by_name_in_any_case() -> None:
    assert set(BUILTIN) == {"camvid", "cityscapes"}
    assert load_palette("CamVid") is CAMVID
    assert load_palette("cityscapes") is CITYSCAPES


@pytest.mark.parametrize(
    "data",
    [
        {"classes": ["bg", "thing"], "colors": [[0, 0, 0], [255, 10, 20]]},
        [{"name": "bg", "color": [0, 0, 0]}, {"name": "thing", "color": [255, 10, 20]}],
    ],
    ids=["object", "list"],
)
def test_custom_palette_loads_from_a_json_file(tmp_path: Path, data: object) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(data))
    palette = load_palette(str(path))
    assert palette.classes == ("bg", "thing")
    assert palette.colors == ((0, 0, 0), (255, 10, 20))
    assert palette.name == "mine"
    assert palette_from_json(palette.to_json()) == palette  # to_json round-trips


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "cannot read palette file"),
        ('{"classes": ["a"]}', "not valid"),
        ('{"classes": ["a", "b"], "colors": [[1, 2, 3]]}', "2 names but 1 colours"),
        ('{"classes": ["a"], "colors": [[1, 2, 300]]}', "three integers 0..255"),
        ('{"classes": ["a"], "colors": [[1, 2]]}', "three integers 0..255"),
        ('{"classes": ["a"], "colors": [["red", 0, 0]]}', "not valid"),
        ('{"classes": [], "colors": []}', "1..255 classes"),
        ('"camvid"', "not valid"),
    ],
)
def test_bad_custom_palettes_raise_input_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_palette(str(path))


def test_more_than_255_classes_are_refused() -> None:
    # Ids are stored in uint8 and 255 is reserved for ignore.
    with pytest.raises(InputError, match="1..255 classes"):
        palette_from_json({"classes": [str(i) for i in range(256)], "colors": [[0, 0, 0]] * 256})


def test_unknown_palette_name_says_what_is_available(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="camvid, cityscapes or a JSON file"):
        load_palette(str(tmp_path / "missing.json"))
