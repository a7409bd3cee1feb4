"""default_weights(): ARSEG_WEIGHTS (file or directory), then the repository's weights/ directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from arseg_cli.model import defaults
from arseg_cli.errors import WeightsError, WeightsNotFoundError


@pytest.fixture
def repo_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "weights"
    monkeypatch.delenv(defaults.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(defaults, "weights_dir", lambda: directory)
    return directory


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_the_repository_directory_sits_next_to_the_package() -> None:
    assert defaults.weights_dir() == Path(defaults.__file__).resolve().parents[2] / "weights"


def test_none_without_weights(repo_weights: Path) -> None:
    assert defaults.default_weights() is None
    repo_weights.mkdir()
    (repo_weights / "MODEL_CARD.md").write_text("card")
    assert defaults.default_weights() is None


def test_repository_directory_default_then_single_file(repo_weights: Path) -> None:
    only = _touch(repo_weights / "camvid-bise18.safetensors")
    assert defaults.default_weights() == only
    _touch(repo_weights / "other.safetensors")
    with pytest.raises(WeightsError, match="several weights files .* pick one with `weights`"):
        defaults.default_weights()
    preferred = _touch(repo_weights / defaults.DEFAULT_NAME)
    assert defaults.default_weights() == preferred


def test_environment_wins(repo_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _touch(repo_weights / defaults.DEFAULT_NAME)
    chosen = _touch(tmp_path / "mine" / "model.safetensors")
    monkeypatch.setenv(defaults.WEIGHTS_ENV, str(chosen))
    assert defaults.default_weights() == chosen
    monkeypatch.setenv(defaults.WEIGHTS_ENV, str(chosen.parent))
    assert defaults.default_weights() == chosen
    monkeypatch.setenv(defaults.WEIGHTS_ENV, str(tmp_path / "missing"))
    with pytest.raises(WeightsNotFoundError, match="ARSEG_WEIGHTS=.*no such file"):
        defaults.default_weights()
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(defaults.WEIGHTS_ENV, str(empty))
    with pytest.raises(WeightsNotFoundError, match="holds no"):
        defaults.default_weights()
