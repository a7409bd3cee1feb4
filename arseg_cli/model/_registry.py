"""The one table of architectures: id -> (configuration record, builder). CLI choices, weights loading,
training and tests all read it; importing `arseg_cli.model` fills it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from arseg_cli.errors import OptionsError
from arseg_cli.model.architecture import ArchConfig

if TYPE_CHECKING:
    from arseg_cli.model._segnet import SegNet

Builder = Callable[..., "SegNet"]
_B = TypeVar("_B", bound=Builder)

_BUILDERS: dict[str, Builder] = {}
_CONFIGS: dict[str, ArchConfig] = {}


def register(config: ArchConfig) -> Callable[[_B], _B]:
    """Decorator: record `builder` and its configuration under `config.arch`; a second registration of
    the same id is refused."""

    def record(builder: _B) -> _B:
        if config.arch in _BUILDERS:
            raise ValueError(f"architecture {config.arch!r} is already registered (by {_BUILDERS[config.arch].__module__})")
        _BUILDERS[config.arch] = builder
        _CONFIGS[config.arch] = config
        return builder

    return record


def list_archs() -> list[str]:
    """Registered architecture ids, sorted."""
    return sorted(_BUILDERS)


def input_multiple_problem(arch: str, multiple: int) -> str | None:
    """What is wrong with padding `arch`'s networks to `multiple` (ModelMeta.input_multiple), or None:
    at least 1, and above 1 only for families that pad (`ArchConfig.input_multiple` > 1)."""
    if multiple < 1:
        return f"input_multiple must be at least 1, got {multiple}"
    if multiple > 1 and arch in _CONFIGS and _CONFIGS[arch].input_multiple == 1:
        return f"{arch} networks do not pad their input: input_multiple must be 1, got {multiple}"
    return None


def arch_config(arch: str) -> ArchConfig:
    """The configuration record of architecture `arch` (an unknown id is a usage error naming the known)."""
    try:
        return _CONFIGS[arch]
    except KeyError:
        raise OptionsError(f"unknown architecture {arch!r}: choose one of {', '.join(list_archs())}") from None


def build(arch: str, **kwargs: Any) -> SegNet:
    """A freshly initialised network of architecture `arch` (keyword arguments go to its builder).

    Builders take `num_classes: int | None` (None: the architecture's own), `fuse: bool` (attach the
    CReFF module `fuse_attention`, as the official AR/LR networks have) and `warp` (CReFF's warp convention).
    """
    arch_config(arch)
    return _BUILDERS[arch](**kwargs)
