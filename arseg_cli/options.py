"""Values of user options that several commands and the library read the same way: image sizes given
as 'HxW', and the device policy ('auto', 'cpu', 'cuda')."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from arseg_cli.errors import OptionsError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_size(text: str) -> tuple[int, int]:
    """(height, width) in pixels from 'HxW' (e.g. '360x480'); anything else is a usage error."""
    match = _SIZE.match(text)
    if match is None:
        raise OptionsError(f"{text!r} is not HxW, e.g. 360x480")
    return int(match.group(1)), int(match.group(2))


def pick_device(policy: str) -> torch.device:
    """'auto' (CUDA when available, else CPU), 'cpu' or 'cuda' (an error when there is none)."""
    import torch  # here: parsing a size must not cost the import of torch

    if policy == "cuda" and not torch.cuda.is_available():
        raise OptionsError("`device` cuda: no CUDA device is available")
    if policy not in ("auto", "cpu", "cuda"):
        raise OptionsError(f"unknown device {policy!r}: use auto, cpu or cuda")
    return torch.device("cuda" if policy != "cpu" and torch.cuda.is_available() else "cpu")


def compile_on(enabled: bool, device: torch.device) -> bool:
    """Whether CReFF's compiled attention (`compile_attention`) applies on `device`: the CPU only;
    elsewhere a warning says it has no effect."""
    if enabled and device.type != "cpu":
        logger.warning("the compiled attention speeds up CReFF on the CPU only; on %s it has no effect", device.type)
        return False
    return enabled
