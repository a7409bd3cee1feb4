"""Label PNGs to train ids: class-id images, CamVid colour images, Cityscapes label-id images.

Every reader returns (H, W) uint8 train ids with 255 (IGNORE_INDEX) where a pixel has no usable class:
- "ids":        the pixel value is the train id (palette "P" or grey "L" PNG, as `arseg synth` and
                AR-Seg's `*_labels_with_ignored` write); values >= the class count become 255.
- "camvid":     RGB colours of the CamVid palette (the common `train_labels/` layout); Void (0, 0, 0)
                is class 11, any other colour 255. A grey/palette image there is read as "ids".
- "cityscapes": Cityscapes label ids (`*_gtFine_labelIds.png`), mapped with the standard table to
                the 19 train ids; every other id (void, license plate, classes not trained) is 255.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from arseg_cli.errors import InputError, InputNotFoundError
from arseg_cli.palettes import CAMVID, IGNORE_INDEX

LabelFormat = Literal["ids", "camvid", "cityscapes"]

#: Cityscapes label id -> train id (cityscapesScripts' labels.py, the 19 evaluated classes).
CITYSCAPES_TRAIN_IDS: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13, 27: 14,
    28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip


def _table(mapping: dict[int, int]) -> np.ndarray:
    table = np.full(256, IGNORE_INDEX, np.uint8)
    for source, target in mapping.items():
        table[source] = target
    return table


_CITYSCAPES_LUT = _table(CITYSCAPES_TRAIN_IDS)


def _colour_key(rgb: np.ndarray) -> np.ndarray:
    """One int32 per pixel: (r << 16) | (g << 8) | b."""
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


_CAMVID_KEYS = _colour_key(np.asarray(CAMVID.colors, np.uint8))


def camvid_colours_to_ids(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 CamVid colours -> (H, W) uint8 ids (Void = 11; unknown colours 255)."""
    keys = _colour_key(rgb)
    order = np.argsort(_CAMVID_KEYS)
    sorted_keys = _CAMVID_KEYS[order]
    position = np.clip(np.searchsorted(sorted_keys, keys), 0, len(sorted_keys) - 1)
    ids = order[position].astype(np.uint8)
    return np.where(sorted_keys[position] == keys, ids, np.uint8(IGNORE_INDEX))


def cityscapes_ids_to_train_ids(ids: np.ndarray) -> np.ndarray:
    """(H, W) uint8 Cityscapes label ids -> (H, W) uint8 train ids (255 for ids not trained)."""
    return _CITYSCAPES_LUT[ids]


def read_label_png(path: Path, fmt: LabelFormat, *, num_classes: int) -> np.ndarray:
    """Read one label image as (H, W) uint8 train ids (see the module docstring for `fmt`)."""
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            array = np.asarray(image.convert("RGB") if mode in ("RGB", "RGBA") else image)
    except FileNotFoundError:
        raise InputNotFoundError(f"label file {path} does not exist") from None
    except OSError as error:
        raise InputError(f"cannot read label file {path}: {error}") from None
    if array.ndim == 3:
        if fmt != "camvid":
            raise InputError(f"label file {path} is a colour image; expected one channel of class ids")
        return camvid_colours_to_ids(array)
    if array.dtype != np.uint8:
        raise InputError(f"label file {path}: expected 8-bit class ids, got {array.dtype} (mode {mode})")
    if fmt == "cityscapes":
        return cityscapes_ids_to_train_ids(array)
    return np.where(array < num_classes, array, np.uint8(IGNORE_INDEX)).astype(np.uint8)
