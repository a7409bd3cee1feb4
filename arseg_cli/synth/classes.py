"""The label ids SynthStreet draws: the 12 CamVid classes of arseg_cli.palettes.CAMVID, by name."""

from __future__ import annotations

from enum import IntEnum

from arseg_cli.palettes import CAMVID


class Label(IntEnum):
    """CamVid class ids (11 classes + Void), in the order of the CAMVID palette."""

    SKY = 0
    BUILDING = 1
    POLE = 2
    ROAD = 3
    SIDEWALK = 4
    TREE = 5
    SIGN = 6
    FENCE = 7
    CAR = 8
    PEDESTRIAN = 9
    BICYCLIST = 10
    VOID = 11


NUM_CLASSES = len(Label)
PALETTE = CAMVID
