"""Palettes: the built-in ones match the official colours, custom ones load, bad ones are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from arseg_cli.errors import InputError
from arseg_cli.palettes import BUILTIN, CAMVID, CITYSCAPES, IGNORE_INDEX, Palette, load_palette, palette_from_json


# Copied by hand from reference/OFFICIAL.md (index order = class id), not from palettes.py.
OFFICIAL_CAMVID = [
    ("sky", (128, 128, 128)), ("building", (128, 0, 0)), ("pole", (192, 192, 128)), ("road", (128, 64, 128)),
    ("sidewalk", (0, 0, 192)), ("tree", (128, 128, 0)), ("sign", (192, 128, 128)), ("fence", (64, 64, 128)),
    ("car", (64, 0, 128)), ("pedestrian", (64, 64, 0)), ("bicyclist", (0, 128, 192)), ("void", (0, 0, 0)),
]  # fmt: skip
OFFICIAL_CITYSCAPES = [
    ("road", (128, 64, 128)), ("sidewalk", (244, 35, 232)), ("building", (70, 70, 70)), ("wall", (102, 102, 156)),
    ("fence", (190, 153, 153)), ("pole", (153, 153, 153)), ("traffic light", (250, 170, 30)),
    ("traffic sign", (220, 220, 0)), ("vegetation", (107, 142, 35)), ("terrain", (152, 251, 152)),
    ("sky", (70, 130, 180)), ("person", (220, 20, 60)), ("rider", (255, 0, 0)), ("car", (0, 0, 142)),
    ("truck", (0, 0, 70)), ("bus", (0, 60, 100)), ("train", (0, 80, 100)), ("motorcycle", (0, 0, 230)),
    ("bicycle", (119, 11, 32)),
]  # fmt: skip


def test_camvid_is_the_eleven_official_classes_plus_void_in_their_colours() -> None:
    assert list(zip(CAMVID.classes, CAMVID.colors)) == OFFICIAL_CAMVID


def test_cityscapes_is_the_nineteen_train_ids_in_their_official_colours() -> None:
    assert list(zip(CITYSCAPES.classes, CITYSCAPES.colors)) == OFFICIAL_CITYSCAPES


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
        ("{not json", "cannot read palette file .*bad.json: Expecting property name"),
        ('{"classes": ["a"]}', "not valid: missing key 'colors'"),
        ('[{"name": "a"}]', "not valid: missing key 'color'"),
        ('{"classes": ["a", "b"], "colors": [[1, 2, 3]]}', "2 names but 1 colours"),
        ('{"classes": ["a"], "colors": [[1, 2, 300]]}', "three integers 0..255"),
        ('{"classes": ["a"], "colors": [[1, 2]]}', "three integers 0..255"),
        ('{"classes": ["a"], "colors": [["red", 0, 0]]}', "three integers 0..255"),
        ('{"classes": ["a"], "colors": [[1.5, 0, 0]]}', "three integers 0..255"),  # not truncated to 1
        ('{"classes": ["a"], "colors": [[true, 0, 0]]}', "three integers 0..255"),  # not read as 1
        ('{"classes": ["a"], "colors": ["#ff0000"]}', "colours must be lists"),
        ('{"classes": [7], "colors": [[1, 2, 3]]}', "class names must be strings"),
        ('{"classes": "ab", "colors": [[1, 2, 3], [4, 5, 6]]}', "must be lists"),
        ('{"classes": [], "colors": []}', "1..255 classes"),
        ('"camvid"', "not valid: expected an object or a list"),
        ("", "cannot read palette file"),
    ],
)
def test_bad_custom_palettes_raise_a_one_line_input_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        load_palette(str(path))
    assert "\n" not in str(info.value)


def test_a_palette_file_that_is_not_text_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "image.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(InputError, match="cannot read palette file") as info:
        load_palette(str(path))
    assert "\n" not in str(info.value)


def test_more_than_255_classes_are_refused() -> None:
    # Ids are stored in uint8 and 255 is reserved for ignore.
    with pytest.raises(InputError, match="1..255 classes"):
        palette_from_json({"classes": [str(i) for i in range(256)], "colors": [[0, 0, 0]] * 256})


def test_unknown_palette_name_says_what_is_available(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="camvid, cityscapes or a JSON file"):
        load_palette(str(tmp_path / "missing.json"))
