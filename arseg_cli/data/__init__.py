"""Data sets and training pairs: readers for SynthStreet, CamVid and Cityscapes layouts, pairs decoded
from a compressed snippet with bitstream motion, augmentation, and a torch Dataset (docs/DATA.md).

Modules, one job each: records (the records), labels (label files to train ids), sources (frames from
videos or image files), synthstreet / camvid / cityscapes (one per layout), layouts (open_dataset),
pairs (make_pair, PairCache), augment (augment_pair), torch_dataset (PairDataset).
"""

from arseg_cli.data.augment import augment_pair
from arseg_cli.data.layouts import LAYOUTS, detect_layout, open_dataset
from arseg_cli.data.pairs import Pair, PairCache, make_pair
from arseg_cli.data.records import Dataset, FrameSource, LabelledFrame
from arseg_cli.data.torch_dataset import PairDataset

__all__ = [
    "LAYOUTS", "Dataset", "FrameSource", "LabelledFrame", "Pair", "PairCache", "PairDataset", "augment_pair",
    "detect_layout", "make_pair", "open_dataset",
]  # fmt: skip
