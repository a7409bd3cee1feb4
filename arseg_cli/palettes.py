"""Class names and colours of the label sets arseg knows (CamVid, Cityscapes), and custom palettes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arseg_cli.errors import InputError, OptionsError

IGNORE_INDEX = 255


@dataclass(frozen=True, slots=True)
class Palette:
    """Class names and their RGB colours; class id = position in the tuples."""

    name: str
    classes: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]

    def __post_init__(self) -> None:
        if len(self.classes) != len(self.colors):
            raise InputError(f"palette {self.name!r}: {len(self.classes)} names but {len(self.colors)} colours")
        if not 1 <= len(self.classes) <= 255:
            raise InputError(f"palette {self.name!r}: needs 1..255 classes, got {len(self.classes)}")
        for color in self.colors:
            if len(color) != 3 or not all(type(c) is int and 0 <= c <= 255 for c in color):  # not bool, not 1.5
                raise InputError(f"palette {self.name!r}: colour {color!r} is not three integers 0..255")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def check_fits(self, num_classes: int) -> None:
        """OptionsError unless the palette has a colour for each of the weights' `num_classes` classes."""
        if self.num_classes != num_classes:
            raise OptionsError(f"the palette {self.name!r} has {self.num_classes} classes but the weights have {num_classes}")

    def lut(self) -> np.ndarray:
        """(256, 3) uint8 colour lookup table; ids outside the palette (e.g. 255 = ignore) are black."""
        table = np.zeros((256, 3), np.uint8)
        table[: self.num_classes] = np.asarray(self.colors, np.uint8)
        return table

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "classes": list(self.classes), "colors": [list(c) for c in self.colors]}


CAMVID = Palette(
    "camvid",
    ("sky", "building", "pole", "road", "sidewalk", "tree", "sign", "fence", "car", "pedestrian", "bicyclist",
     "void"),
    ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (0, 0, 192), (128, 128, 0), (192, 128, 128),
     (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192), (0, 0, 0)),
)  # fmt: skip

CITYSCAPES = Palette(
    "cityscapes",
    ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
     "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"),
    ((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
     (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0),
     (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32)),
)  # fmt: skip

BUILTIN: dict[str, Palette] = {p.name: p for p in (CAMVID, CITYSCAPES)}


def palette_from_json(data: object, name: str = "custom") -> Palette:
    """A palette from `{"classes": [...], "colors": [[r, g, b], ...]}` (or a list of {"name", "color"}).

    Names must be strings and colours three integers 0..255; nothing is converted (a colour of 1.5
    or true is an error, not silently 1).
    """
    try:
        if isinstance(data, dict):
            classes, colors = data["classes"], data["colors"]
            name = str(data.get("name", name))
            if not isinstance(classes, list) or not isinstance(colors, list):
                raise TypeError('"classes" and "colors" must be lists')
        elif isinstance(data, list):
            classes = [item["name"] for item in data]
            colors = [item["color"] for item in data]
        else:
            raise TypeError("expected an object or a list")
        if not all(isinstance(c, str) for c in classes):
            raise TypeError("class names must be strings")
        if not all(isinstance(c, list) for c in colors):
            raise TypeError("colours must be lists [r, g, b]")
    except (KeyError, TypeError, ValueError) as error:
        message = f"missing key {error}" if isinstance(error, KeyError) else str(error)
        raise InputError(f"palette {name!r} is not valid: {message}") from None
    return Palette(name, tuple(classes), tuple(tuple(c) for c in colors))


def load_palette(spec: str) -> Palette:
    """A built-in palette by name ('camvid', 'cityscapes') or a custom one from a JSON file."""
    if spec.lower() in BUILTIN:
        return BUILTIN[spec.lower()]
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"unknown palette {spec!r}: use one of {', '.join(BUILTIN)} or a JSON file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read palette file {path}: {error}") from None
    return palette_from_json(data, name=path.stem)
