"""Where the default weights are found when a command gets no --weights.

Lookup order:
1. the environment variable ARSEG_WEIGHTS: a weights file, or a directory searched as in 2
   (a path that does not exist is an error, not a silent fallback);
2. the repository's `weights/` directory next to the package (…/arseg_cli/../weights): its
   `default.safetensors`, else its only `*.safetensors` file (several without a default.safetensors is
   an error naming them).
None when neither gives a file.
"""

from __future__ import annotations

import os
from pathlib import Path

from arseg_cli.errors import WeightsError, WeightsNotFoundError

WEIGHTS_ENV = "ARSEG_WEIGHTS"
DEFAULT_NAME = "default.safetensors"


def weights_dir() -> Path:
    """The repository's weights/ directory (it may not exist)."""
    return Path(__file__).resolve().parents[2] / "weights"


def default_weights() -> Path | None:
    """The default weights file (module docstring), or None when there is none."""
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.exists():
            raise WeightsNotFoundError(f"{WEIGHTS_ENV}={env}: no such file or directory")
        found = path if path.is_file() else _in_directory(path)
        if found is None:
            raise WeightsNotFoundError(f"{WEIGHTS_ENV}={env}: the directory holds no *.safetensors file")
        return found
    directory = weights_dir()
    return _in_directory(directory) if directory.is_dir() else None


def _in_directory(directory: Path) -> Path | None:
    preferred = directory / DEFAULT_NAME
    if preferred.is_file():
        return preferred
    candidates = sorted(p for p in directory.glob("*.safetensors") if p.is_file())
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise WeightsError(f"{directory} holds several weights files ({names}) and no {DEFAULT_NAME}: pick one with `weights`")
    return candidates[0] if candidates else None
