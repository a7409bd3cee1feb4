"""arseg_cli.options: the option values several commands share (sizes 'HxW', the device policy)."""

from __future__ import annotations

import pytest
import torch

from arseg_cli.errors import OptionsError
from arseg_cli.options import parse_size, pick_device


def test_sizes_are_height_by_width() -> None:
    assert parse_size("360x480") == (360, 480)
    assert parse_size(" 72 X 100 ") == (72, 100)
    for bad in ("360", "360x", "x480", "360x480x3", "-1x4", "360*480"):
        with pytest.raises(OptionsError, match="is not HxW"):
            parse_size(bad)


def test_device_policy() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(OptionsError, match="unknown device 'tpu'"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(OptionsError, match="no CUDA device"):
            pick_device("cuda")
