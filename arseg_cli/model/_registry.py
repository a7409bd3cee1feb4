"""The one table of architectures: id -> builder. CLI choices, weights loading and tests all read it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from arseg_cli.errors import OptionsError

if TYPE_CHECKING:
    from arseg_cli.model._segnet import SegNet
    from arseg_cli.model.arseg import ARSeg
    from arseg_cli.model.meta import ModelMeta

Builder = Callable[..., "SegNet"]
_B = TypeVar("_B", bound=Builder)

_BUILDERS: dict[str, Builder] = {}


def register(arch: str) -> Callable[[_B], _B]:
    """Decorator: record `builder` under `arch`; a second registration of the same id is refused."""

    def record(builder: _B) -> _B:
        if arch in _BUILDERS:
            raise ValueError(f"architecture {arch!r} is already registered (by {_BUILDERS[arch].__module__})")
        _BUILDERS[arch] = builder
        return builder

    return record


def list_archs() -> list[str]:
    """Registered architecture ids, sorted."""
    return sorted(_BUILDERS)


def build(arch: str, **kwargs: Any) -> SegNet:
    """A freshly initialised network of architecture `arch` (keyword arguments go to its builder).

    Builders take `num_classes: int | None` (None: the architecture's own), `fuse: bool` (attach the
    CReFF module `fuse_attention`, as the official AR/LR networks have) and `warp` (CReFF's warp convention).
    """
    try:
        builder = _BUILDERS[arch]
    except KeyError:
        raise OptionsError(f"unknown architecture {arch!r}: choose one of {', '.join(list_archs())}") from None
    return builder(**kwargs)


def build_arseg(meta: ModelMeta, *, has_hr: bool = True) -> ARSeg:
    """A freshly initialised ARSeg model as `meta` describes it (LR branch iff meta.scale is set, CReFF
    iff meta.has_creff); `has_hr=False` for a plain LR baseline without HR branch."""
    from arseg_cli.model.arseg import ARSeg  # late: arseg.py builds its branches through this module

    return ARSeg(meta, has_hr=has_hr)
