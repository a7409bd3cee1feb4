"""arseg's own weight format: a safetensors file holding an ARSeg state_dict plus JSON metadata.

Layout: the tensors are the model's `state_dict()` (HR and LR branches). Tensors that are one
object under several names (the official nets register some modules twice, e.g. `final_conv` =
`cls.4`) are stored once under their first name; safetensors refuses shared tensors, and storing
copies would let the copies drift apart. The header's `__metadata__` (string values only) holds:

    format          "arseg-weights"
    format_version  "1"
    meta            ModelMeta as JSON (arch, classes, palette, normalisation, scale, L, warp, ...)
    aliases         JSON {alias name: stored name}
    storage_dtype   "float32" or "float16" (floating tensors; integer buffers keep their dtype)
    branches        JSON list of the model's branches ("hr", "lr"): a plain LR baseline has no "hr"
    parameters      JSON {branch: parameter count}, so `arseg weights info` needs only the header

Reading never unpickles anything: the header is parsed here and the tensors are read by the
safetensors library. Every problem becomes one WeightsError line naming what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from arseg_cli.errors import WeightsError
from arseg_cli.model._registry import input_multiple_problem, list_archs
from arseg_cli.model._safetensors_header import read_header
from arseg_cli.model.arseg import ARSeg, build_arseg
from arseg_cli.model.meta import ModelMeta, WarpConvention
from arseg_cli.scale_interval import keyframe_interval_problem, scale_problem
from arseg_cli.atomic_files import atomic_path, os_errors_as_output_errors

FORMAT_NAME = "arseg-weights"
FORMAT_VERSION = 1
BRANCHES = ("hr", "lr")
_FLOAT16_MAX = float(torch.finfo(torch.float16).max)
# A safetensors header is JSON describing the tensors; anything claiming more is not one.
_NAMES_SHOWN = 3


@dataclass(frozen=True, slots=True)
class WeightsInfo:
    """What the header of an arseg weights file says (read without touching the tensor data).

    tensors:     stored tensor names -> shape (aliases not included).
    aliases:     alias name -> stored name.
    branches:    the model's branches, 'hr' and/or 'lr'.
    parameters:  branch name ('hr', 'lr', ...) -> number of parameters (shared ones counted in
                 each branch that uses them).
    """

    path: Path
    meta: ModelMeta
    format_version: int
    storage_dtype: str
    tensors: dict[str, tuple[int, ...]]
    aliases: dict[str, str]
    branches: tuple[str, ...]
    parameters: dict[str, int]
    file_bytes: int


# ---------------------------------------------------------------------------------------------
# writing


def save_weights(
    model: nn.Module,
    path: str | Path,
    *,
    meta: ModelMeta | None = None,
    dtype: torch.dtype | None = None,
    force: bool = False,
) -> Path:
    """Write `model`'s state_dict and metadata to `path` (atomically); return the path.

    meta:  defaults to `model.meta`.
    dtype: None keeps each tensor's dtype; torch.float16 stores floating tensors in half precision
           (half the size, for embedded defaults; `load_weights` restores float32). Integer buffers
           such as BatchNorm's `num_batches_tracked` (int64) are always kept as they are.
    force: replace an existing file (otherwise OutputExistsError).
    """
    meta = meta if meta is not None else getattr(model, "meta", None)
    if not isinstance(meta, ModelMeta):
        raise WeightsError("save_weights needs a ModelMeta: pass meta= or give the model a .meta")
    if dtype not in (None, torch.float32, torch.float16):
        raise WeightsError(f"weights can be stored as float32 or float16, not {dtype}")
    state = model.state_dict()
    _check_finite(state.items(), "the model")
    tensors, aliases = _deduplicate(state)
    if dtype is not None:
        tensors = {name: _cast_floating(name, t, dtype) for name, t in tensors.items()}
    storage = "float16" if dtype == torch.float16 else "float32"
    header = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "meta": json.dumps(meta.to_json(), sort_keys=True),
        "aliases": json.dumps(aliases, sort_keys=True),
        "storage_dtype": storage,
        "branches": json.dumps(model_branches(model)),
        "parameters": json.dumps(branch_parameter_counts(model)),
    }
    with atomic_path(path, force=force) as temp, os_errors_as_output_errors(path):
        mode = temp.stat().st_mode  # the umask's: safetensors replaces the file with an owner-only one
        save_file(tensors, str(temp), metadata=header)
        temp.chmod(mode)
    return Path(path)


def model_branches(model: nn.Module) -> list[str]:
    """The AR-Seg branches ('hr', 'lr') that `model` has (an attribute that is a module)."""
    return [name for name in BRANCHES if isinstance(getattr(model, name, None), nn.Module)]


def branch_parameter_counts(model: nn.Module) -> dict[str, int]:
    """Parameters per top-level child module (the branches: 'hr', 'lr'); shared ones count in each."""
    counts = {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}
    counts = {name: n for name, n in counts.items() if n}
    counts["total"] = sum(p.numel() for p in model.parameters())  # shared parameters once
    return counts


def _deduplicate(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Store each tensor object once: (stored name -> contiguous CPU copy, alias -> stored name)."""
    for name, tensor in state.items():
        if tensor.device.type == "meta":
            raise WeightsError(f"cannot save {name}: it is a meta tensor without data")
    aliases = _alias_map(state)
    stored = {n: t.detach().to("cpu").contiguous().clone() for n, t in state.items() if n not in aliases}
    return stored, aliases


def _alias_map(state: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """alias -> first name, for names that are the same view of the same memory.

    Tensors that merely overlap another one's memory are not aliases: they are stored as
    independent copies (safetensors cannot express partial sharing).
    """
    first_name_of_view: dict[tuple[Any, ...], str] = {}
    aliases: dict[str, str] = {}
    for name, tensor in state.items():
        key = _view_key(tensor)
        if key is None:
            continue
        if key in first_name_of_view:
            aliases[name] = first_name_of_view[key]
        else:
            first_name_of_view[key] = name
    return aliases


def _view_key(tensor: torch.Tensor) -> tuple[Any, ...] | None:
    """Identity of a tensor view (same memory, same layout); None for empty tensors (no memory)."""
    if tensor.numel() == 0:
        return None
    return (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tensor.dtype,
            tuple(tensor.shape), tensor.stride())  # fmt: skip


def _cast_floating(name: str, tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if not tensor.is_floating_point():
        return tensor
    if dtype == torch.float16 and tensor.numel() and tensor.abs().max().item() > _FLOAT16_MAX:
        raise WeightsError(f"cannot store {name} as float16: values exceed {_FLOAT16_MAX:g}; store float32")
    return tensor.to(dtype)


# ---------------------------------------------------------------------------------------------
# reading


def read_meta(path: str | Path) -> ModelMeta:
    """The ModelMeta of an arseg weights file, from its header only (cheap)."""
    return read_info(path).meta


def read_info(path: str | Path) -> WeightsInfo:
    """Everything the header says; checks that the file is a complete arseg weights file."""
    path = Path(path)
    header, file_bytes = read_header(path)
    metadata = header.pop("__metadata__", None)
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise WeightsError(f"{path} is a safetensors file without arseg metadata (not written by arseg?)")
    version = metadata.get("format_version", "")
    if not version.isdigit():
        raise WeightsError(f"{path}: arseg metadata has no valid format_version ({version!r})")
    if int(version) != FORMAT_VERSION:
        raise WeightsError(f"{path}: weights format version {version} is not supported (this arseg reads {FORMAT_VERSION})")
    meta_json = _metadata_json(path, metadata, "meta", dict)
    try:
        meta = ModelMeta.from_json(meta_json)
    except (KeyError, TypeError, ValueError) as error:
        raise WeightsError(f"{path}: model metadata is invalid ({type(error).__name__}: {error})") from None
    _check_meta(path, meta)
    aliases = _metadata_json(path, metadata, "aliases", dict)
    parameters = _metadata_json(path, metadata, "parameters", dict)
    branches = _metadata_json(path, metadata, "branches", list)
    if not branches or not set(branches) <= set(BRANCHES):
        raise WeightsError(f"{path}: arseg metadata 'branches' must list 'hr' and/or 'lr', not {branches}")
    if "lr" in branches and meta.scale is None:
        raise WeightsError(f"{path}: the model has an LR branch but its metadata gives no LR scale")
    tensors = {name: tuple(int(d) for d in entry["shape"]) for name, entry in header.items()}
    missing_targets = sorted(a for a, target in aliases.items() if target not in tensors)
    if missing_targets:
        raise WeightsError(f"{path}: aliases point to tensors that are not stored: {_some(missing_targets)}")
    return WeightsInfo(
        path=path,
        meta=meta,
        format_version=int(version),
        storage_dtype=str(metadata.get("storage_dtype", "float32")),
        tensors=tensors,
        aliases={str(a): str(t) for a, t in aliases.items()},
        branches=tuple(str(b) for b in branches),
        parameters={str(k): int(v) for k, v in parameters.items()},
        file_bytes=file_bytes,
    )


def _check_meta(path: Path, meta: ModelMeta) -> None:
    """Values the model is built from must make sense (JSON can say anything)."""
    problems = []
    if meta.warp not in ("official", "exact"):
        problems.append(f"warp {meta.warp!r} is neither 'official' nor 'exact'")
    if meta.lr_backbone not in ("own", "shared"):
        problems.append(f"lr_backbone {meta.lr_backbone!r} is neither 'own' nor 'shared'")
    for problem in (None if meta.scale is None else scale_problem(meta.scale), keyframe_interval_problem(meta.keyframe_interval)):
        if problem:
            problems.append(problem)
    padding = input_multiple_problem(meta.arch, meta.input_multiple)
    if padding:
        problems.append(padding)
    if not meta.classes or len(meta.palette) != len(meta.classes):
        problems.append(f"{len(meta.classes)} classes but {len(meta.palette)} palette colours")
    if problems:
        raise WeightsError(f"{path}: model metadata is invalid ({'; '.join(problems)})")


def read_state_dict(path: str | Path) -> tuple[ModelMeta, dict[str, torch.Tensor]]:
    """The metadata and the full state_dict of a weights file (aliases restored as shared tensors).

    Floating tensors come back as float32 whatever the storage dtype; integer buffers as stored.
    Raises WeightsError on any damage, including NaN/Inf values.
    """
    info, state = _read(path)
    return info.meta, state


def load_weights(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    arch: str | None = None,
    num_classes: int | None = None,
    warp: WarpConvention | None = None,
) -> ARSeg:
    """Build the ARSeg model a weights file describes and load its tensors; returns it in eval mode.

    The architecture, branches, class count, LR scale and warp convention come from the file's
    metadata. `arch`, `num_classes` and `warp` are optional expectations of the caller: a value that
    contradicts the file raises WeightsError instead of silently winning.
    """
    info, state = _read(path)
    meta = info.meta
    expected = {"architecture": (arch, meta.arch), "class count": (num_classes, meta.num_classes), "warp convention": (warp, meta.warp)}
    for what, (asked, stored) in expected.items():
        if asked is not None and asked != stored:
            raise WeightsError(f"{info.path}: its {what} is {stored!r}, but {asked!r} was asked for")
    model = _build_model(meta, has_hr="hr" in info.branches, path=info.path)
    load_state_strict(model, state, source=str(info.path))
    return model.to(device).eval()


def _read(path: str | Path) -> tuple[WeightsInfo, dict[str, torch.Tensor]]:
    info = read_info(path)
    try:
        with safe_open(str(info.path), framework="pt", device="cpu") as handle:
            state = {name: handle.get_tensor(name) for name in info.tensors}
    except (SafetensorError, OSError, RuntimeError) as error:
        raise WeightsError(f"{info.path}: tensor data cannot be read ({error})") from None
    state = {name: t.float() if t.is_floating_point() else t for name, t in state.items()}
    _check_finite(state.items(), str(info.path))
    for alias, target in info.aliases.items():
        state[alias] = state[target]
    return info, state


def _build_model(meta: ModelMeta, *, has_hr: bool, path: Path) -> ARSeg:
    if meta.arch not in list_archs():
        raise WeightsError(f"{path}: unknown architecture {meta.arch!r} (known: {', '.join(list_archs())})")
    return build_arseg(meta, has_hr=has_hr)


def load_state_strict(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str) -> None:
    """`model.load_state_dict(state, strict=True)` with one-line errors naming keys and shapes.

    Also refuses a file that stores different values under two names the model ties to one tensor
    (loading would silently keep only one of them).
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = [f"missing {len(missing)} keys ({_some(missing)})"] if missing else []
        parts += [f"unexpected {len(unexpected)} keys ({_some(unexpected)})"] if unexpected else []
        raise WeightsError(f"{source} does not fit the model: " + "; ".join(parts))
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise WeightsError(
                f"{source}: {name} has shape {tuple(state[name].shape)} but the model expects {tuple(tensor.shape)}"
            )
    for alias, target in _alias_map(expected).items():
        if state[alias] is not state[target] and not torch.equal(state[alias], state[target]):
            raise WeightsError(f"{source}: {alias} and {target} are one tensor in the model but differ in the file")
    with torch.no_grad():
        model.load_state_dict(state, strict=True)


def _metadata_json(path: Path, metadata: Mapping[str, str], key: str, kind: type) -> Any:
    if key not in metadata:
        raise WeightsError(f"{path}: arseg metadata lacks {key!r}")
    try:
        value = json.loads(metadata[key])
    except (TypeError, json.JSONDecodeError):
        raise WeightsError(f"{path}: arseg metadata {key!r} is not valid JSON") from None
    if not isinstance(value, kind):
        raise WeightsError(f"{path}: arseg metadata {key!r} is not a JSON {kind.__name__}")
    return value


def _check_finite(items: Iterable[tuple[str, torch.Tensor]], source: str) -> None:
    bad = [name for name, t in items if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise WeightsError(f"{source} has NaN or Inf values in {len(bad)} tensors ({_some(bad)})")


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMES_SHOWN])
    return shown + (f", ... {len(names) - _NAMES_SHOWN} more" if len(names) > _NAMES_SHOWN else "")

