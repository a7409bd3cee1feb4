"""The model that `--weights` values name: arseg weights, official files with roles, a release directory,
or the default weights."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from arseg_cli.errors import OptionsError, WeightsError
from arseg_cli.model.arseg import ARSeg
from arseg_cli.model.defaults import default_weights
from arseg_cli.model.official import load_official, scale_from_name
from arseg_cli.model.official_release import find_official_files
from arseg_cli.model.weights import load_weights


def load_model(
    specs: Sequence[str], *, arch: str | None = None, scale: float | None = None, device: str | torch.device = "cpu"
) -> tuple[ARSeg, str]:
    """The model the `--weights` values name, on `device`, eval mode; and a description of them.

    specs: empty (the default weights, model.defaults), one arseg `.safetensors` file, one directory of
    the official release (`checkpoints/` or one `{arch}/` folder: HR + the AR file at `scale`), or
    official `.pth` files as `hr=FILE`, `ar=FILE`, `lr=FILE` (a bare `.pth` is HR when its name's scale
    field is 1.0 or missing, AR otherwise).
    """
    if not specs:
        found = default_weights()
        if found is None:
            raise WeightsError(
                "no weights given and none installed: run `make weights` (or set ARSEG_WEIGHTS), "
                "or give `weights`: an arseg .safetensors file, official hr=FILE ar=FILE, or the official release directory"
            )
        return load_weights(found, device=device), str(found)
    if len(specs) == 1 and "=" not in specs[0]:
        path = Path(specs[0])
        if path.is_dir():
            files = find_official_files(path, arch=arch, scale=scale, kind="ar")
            model = load_official(**files.roles(), arch=arch, scale=scale)
            return model.to(device).eval(), str(path)
        if path.suffix != ".pth":
            return load_weights(path, device=device, arch=arch), str(path)
    roles: dict[str, str] = {}
    for spec in specs:
        role, _, name = spec.rpartition("=") if "=" in spec else ("", "", spec)
        if not role:
            guessed = scale_from_name(name)
            role = "hr" if guessed is None or guessed >= 1.0 else "ar"
        role = role.lower()
        if role not in ("hr", "ar", "lr"):
            raise OptionsError(f"`weights` {spec}: the role must be hr, ar or lr (e.g. hr=HR.pth ar=AR.pth)")
        if role in roles:
            raise OptionsError(f"`weights`: two {role.upper()} files ({roles[role]}, {name})")
        if not Path(name).is_file():
            raise WeightsError(f"`weights` {spec}: no such file")
        roles[role] = name
    model = load_official(**roles, arch=arch, scale=scale)  # type: ignore[arg-type]
    return model.to(device).eval(), " + ".join(f"{r}={p}" for r, p in roles.items())
