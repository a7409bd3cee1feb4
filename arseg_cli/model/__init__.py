"""AR-Seg networks (PSPNet18, BiSeNet18) with CReFF, official checkpoint loading, arseg weights.

Importing this package registers every architecture family (`list_archs()`).
"""

from arseg_cli.model import bisenet, psp_camvid, psp_cityscapes  # noqa: F401  (registers the families)
from arseg_cli.model._registry import arch_config, build, list_archs
from arseg_cli.model.architecture import ArchConfig
from arseg_cli.model.arseg import ARSeg, build_arseg
from arseg_cli.model.official import load_official
from arseg_cli.model.weights import load_weights, save_weights

__all__ = [
    "ARSeg",
    "ArchConfig",
    "arch_config",
    "build",
    "build_arseg",
    "list_archs",
    "load_official",
    "load_weights",
    "save_weights",
]
