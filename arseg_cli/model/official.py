"""Loading the checkpoints released with the official AR-Seg code (`.pth` state dicts).

A released file is the plain state_dict of an `nn.DataParallel` model: keys start with `module.`, some
modules are stored twice under two names (same tensor), no metadata. HR files hold the HR network, AR files
the LR network plus CReFF (`fuse_attention.*`), LR files the plain LR network (with or without unused
`fuse_attention.*` keys: the official evaluation builds it with the fusion class). Cityscapes PSP HR files
come in two forms: 160 keys (phase-1 training) or 168 (with `final_conv.*` = `cls.4.*` and unused
`fuse_attention.*`); both load.

Files are read with `torch.load(weights_only=True)`: no pickled code runs. Everything else is checked here
(keys, shapes, aliases) so that a wrong file gives one line naming what is wrong, and then loaded strictly.
The LR scale comes from the file name's third `_` field (`PSPNet_resnet18_0.5_87_.pth`) or `scale=`.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from arseg_cli.errors import OptionsError, WeightsError
from arseg_cli.model._registry import arch_config, list_archs
from arseg_cli.model._segnet import SegNet
from arseg_cli.model.architecture import OfficialCheckpoint
from arseg_cli.model.arseg import ARSeg
from arseg_cli.model.meta import ModelMeta
from arseg_cli.scale_interval import scale_problem

PREFIX = "module."
FUSION_PREFIX = "fuse_attention."

_NAMES_SHOWN = 3
# torch.save writes a zip archive; files from before PyTorch 1.6 are a bare pickle (protocol 2 opcode).
_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_MAGIC = b"\x80\x02"

def read_official(path: str | Path) -> dict[str, Tensor]:
    """The state dict of an official `.pth` file with the `module.` prefix removed (tensors on CPU)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        with path.open("rb") as handle:
            head = handle.read(len(_ZIP_MAGIC))
    except OSError as error:
        raise WeightsError(f"{path.name}: cannot be read ({error.strerror or error})") from None
    if not head.startswith((_ZIP_MAGIC, _LEGACY_MAGIC)):
        raise WeightsError(f"{path.name}: not a PyTorch checkpoint (it starts with {head!r})")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "unsupported global" in str(error).lower():
            raise WeightsError(
                f"{path.name}: refused, it holds pickled objects other than tensors (read with weights_only=True, nothing was run)"
            ) from None
        raise WeightsError(f"{path.name}: damaged or truncated PyTorch checkpoint ({_unpickling_reason(error)})") from None
    except (OSError, RuntimeError, EOFError, ValueError, KeyError, IndexError) as error:
        raise WeightsError(f"{path.name}: damaged or truncated PyTorch checkpoint ({_first_line(error)})") from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not loaded:
        raise WeightsError(f"{path.name}: not a state dict (found {type(loaded).__name__})")
    state: dict[str, Tensor] = {}
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise WeightsError(f"{path.name}: not a state dict (entry {key!r} is a {type(value).__name__})")
        state[key.removeprefix(PREFIX)] = value
    return state


def detect_arch(state: Mapping[str, Tensor]) -> str | None:
    """The architecture id an official state dict belongs to: the one whose key markers
    (`ArchConfig.official`) it holds; where several share markers, the one with its class count."""
    marked = [(arch, fmt) for arch, fmt in _official_formats() if {fmt.backbone_key, fmt.classifier_key} <= state.keys()]
    if len(marked) == 1:
        return marked[0][0]
    counted = [arch for arch, fmt in marked if state[fmt.classifier_key].shape[0] == arch_config(arch).num_classes]
    return counted[0] if len(counted) == 1 else None


def _official_formats() -> list[tuple[str, OfficialCheckpoint]]:
    """(arch, its official checkpoint format) of every registered architecture with an official release."""
    return [(arch, official) for arch in list_archs() if (official := arch_config(arch).official) is not None]


def _official_format(arch: str) -> OfficialCheckpoint:
    official = arch_config(arch).official
    if official is None:
        raise OptionsError(f"{arch} has no official AR-Seg checkpoints: choose one of {', '.join(a for a, _ in _official_formats())}")
    return official


def scale_from_name(path: str | Path) -> float | None:
    """LR scale from an official file name's third `_` field (`PSPNet_resnet18_0.5_87_.pth` -> 0.5)."""
    fields = Path(path).name.split("_")
    try:
        scale = float(fields[2])
    except (IndexError, ValueError):
        return None
    return None if scale_problem(scale) else scale


def load_official(
    hr: str | Path | None = None,
    ar: str | Path | None = None,
    lr: str | Path | None = None,
    *,
    arch: str | None = None,
    scale: float | None = None,
) -> ARSeg:
    """An ARSeg model (eval mode, CPU) from released AR-Seg files.

    hr alone: per-frame HR baseline. hr + ar: AR-Seg (HR keyframes, LR + CReFF otherwise). lr alone: plain
    LR baseline (`keyframe` runs the LR network on the downscaled frame). hr + lr: HR keyframes, plain LR
    otherwise. arch: checked against the files (guessed from their keys when None). scale: the LR scale,
    read from the AR/LR file name when None; a clash between the two is an error.
    Official checkpoints use the official CReFF warp convention (meta.warp = 'official'). With hr + ar,
    the LR branch shares the HR classifier when the AR file's `final_conv` equals the HR file's (FST
    copies and freezes it); otherwise it keeps the AR file's own, as the official evaluation uses it.
    """
    if ar is not None and lr is not None:
        raise OptionsError("give an AR file or an LR file, not both")
    if ar is not None and hr is None:
        raise OptionsError("an AR file needs the HR file of the same model (hr=...) for its keyframes")
    if hr is None and ar is None and lr is None:
        raise OptionsError("no checkpoint given: pass hr=, ar= and/or lr=")
    low = ar if ar is not None else lr
    roles = {"hr": hr, "ar": ar, "lr": lr}
    states = {role: read_official(path) for role, path in roles.items() if path is not None}
    config = arch_config(arch or _agree_on_arch(states, roles))
    _official_format(config.arch)
    prepared = {role: prepare_state(state, config.arch, role) for role, state in states.items()}
    meta = ModelMeta(
        arch=config.arch,
        classes=config.palette.classes,
        palette=config.palette.colors,
        mean=config.mean,
        std=config.std,
        scale=None if low is None else _resolve_scale(low, scale),
        warp="official",
        has_creff=ar is not None,
        lr_classifier="shared" if "ar" not in prepared or _same_classifier(prepared["hr"], prepared["ar"]) else "own",
        provenance={"source": "official AR-Seg release", "files": {r: Path(p).name for r, p in roles.items() if p}},
    )
    model = ARSeg(meta, has_hr=hr is not None)
    for role, state in prepared.items():  # HR first: a shared classifier is loaded from the HR file
        branch = model.hr if role == "hr" else model.lr
        assert branch is not None
        load_branch(branch, state, name=f"{Path(roles[role]).name} ({role.upper()})")  # type: ignore[arg-type]
    return model.eval()


def prepare_state(state: Mapping[str, Tensor], arch: str, role: str) -> dict[str, Tensor]:
    """The state dict a branch of `arch` loads strictly, from an official file's (prefix removed).

    role 'hr': CReFF keys are refused (an AR file given as HR) unless the architecture's HR files may
    carry unused ones (cityscapes-psp18); missing key aliases (`ArchConfig.official.key_aliases`) are added.
    role 'ar': CReFF keys required. role 'lr': CReFF keys, if any, dropped (unused by the LR baseline).
    """
    official = _official_format(arch)
    has_fusion = any(k.startswith(FUSION_PREFIX) for k in state)
    out = dict(state)
    if role == "ar" and not has_fusion:
        raise WeightsError("no CReFF keys (fuse_attention.*): an HR or LR-baseline file? pass it as hr= or lr=")
    if role == "hr" and has_fusion and not official.hr_may_hold_creff:
        raise WeightsError("it has CReFF keys (fuse_attention.*): an AR file? pass it as ar=")
    if role in ("hr", "lr"):
        out = {k: v for k, v in out.items() if not k.startswith(FUSION_PREFIX)}
    for alias, stored in official.key_aliases.items():
        if alias not in out and stored in out:
            out[alias] = out[stored]
    return out


def load_branch(net: SegNet, state: Mapping[str, Tensor], *, name: str) -> None:
    """Check `state` against `net` (keys, shapes, aliased entries equal), then load it strictly.

    Every mismatch becomes a one-line WeightsError starting with `name`.
    """
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    guess = detect_arch(state)
    hint = f"; it looks like a {guess} checkpoint" if guess and guess != net.arch else ""
    if missing or unexpected:
        raise WeightsError(f"{name} does not fit {net.arch}: {_listing(missing, 'missing')}, {_listing(unexpected, 'unexpected')}{hint}")
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            found = tuple(state[key].shape)
            raise WeightsError(f"{name} does not fit {net.arch}: {key} has shape {found}, expected {tuple(tensor.shape)}{hint}")
    for group in _alias_groups(expected):
        first = state[group[0]]
        for other in group[1:]:
            if not torch.equal(first, state[other]):
                raise WeightsError(f"{name}: {group[0]} and {other} should be one module stored twice but differ")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as error:  # e.g. a dtype that cannot be copied
        raise WeightsError(f"{name} does not load into {net.arch}: {_first_line(error)}") from None


def _agree_on_arch(states: Mapping[str, Mapping[str, Tensor]], roles: Mapping[str, str | Path | None]) -> str:
    guesses = {role: detect_arch(state) for role, state in states.items()}
    known = {g for g in guesses.values() if g is not None}
    if len(known) > 1:
        found = ", ".join(f"{Path(roles[r]).name}: {g}" for r, g in guesses.items())  # type: ignore[arg-type]
        raise WeightsError(f"the files are of different architectures ({found})")
    if not known:
        names = ", ".join(Path(roles[r]).name for r in states)  # type: ignore[arg-type]
        raise WeightsError(f"cannot tell the architecture of {names}: not an official AR-Seg checkpoint? (or pass arch=)")
    return known.pop()


def _resolve_scale(path: str | Path, scale: float | None) -> float:
    from_name = scale_from_name(path)
    if scale is not None and from_name is not None and abs(scale - from_name) > 1e-9:
        raise OptionsError(f"scale={scale} clashes with the scale {from_name} in the file name {Path(path).name}")
    resolved = scale if scale is not None else from_name
    if resolved is None:
        raise OptionsError(f"cannot read the LR scale from the file name {Path(path).name}: pass scale=")
    return resolved


def _same_classifier(hr: Mapping[str, Tensor], ar: Mapping[str, Tensor]) -> bool:
    """Whether an AR file's classifier is the HR file's (as FST training leaves it: copied, then frozen)."""
    keys = ("final_conv.weight", "final_conv.bias")
    return all(k in hr and k in ar and hr[k].shape == ar[k].shape and torch.equal(hr[k], ar[k]) for k in keys)


def _alias_groups(state: Mapping[str, Tensor]) -> list[list[str]]:
    """Groups of keys whose tensors are one tensor (modules registered under two names)."""
    by_storage: dict[tuple[int, torch.Size], list[str]] = {}
    for key, tensor in state.items():
        by_storage.setdefault((tensor.data_ptr(), tensor.shape), []).append(key)
    return [keys for keys in by_storage.values() if len(keys) > 1]


def _listing(keys: list[str], what: str) -> str:
    shown = ", ".join(keys[:_NAMES_SHOWN]) + (", ..." if len(keys) > _NAMES_SHOWN else "")
    return f"{len(keys)} {what}" + (f" ({shown})" if keys else "")


def _unpickling_reason(error: BaseException) -> str:
    """The line of torch's long weights-only message that says what went wrong."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = next((line for line in lines if not line.startswith(("Weights only", "Please file", "Check the", "("))), "")
    return reason[:160] or _first_line(error)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:160]
