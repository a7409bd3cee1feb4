"""Resource faults and hostile weights through `arseg segment`: an output that cannot grow (disk full) is
one line, exit 1, and leaves no partial file; bad `--weights` (malformed, a pickle that would run code,
another architecture, another class count, NaN) are one line, exit 1, before anything is written.
(--max-pixels and the decompression bombs: test_reliability_corpus.py; the library-level weight checks:
test_weights.py; memory over long videos: benchmarks/bench_segment.py.)"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from _corpus import valid_clip
from _segment_fixtures import tiny_weights
from _segment_fixtures import one_torch_thread  # noqa: F401  (autouse fixture)
from arseg_cli.cli import main
from arseg_cli.atomic_files import is_temp_output

LIMIT_BYTES = 3_000  # per file written: both videos of the 20 frames are larger (4-5 kB)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return valid_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=20, keyint=12)


def _limit_file_size() -> None:
    """In the child: files may not grow past LIMIT_BYTES (writes beyond fail with EFBIG: Python ignores SIGXFSZ)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT_BYTES, LIMIT_BYTES))


def _arseg(args: list[str], **popen: object) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "400"}
    return subprocess.run([sys.executable, "-m", "arseg_cli", *args], env=env, capture_output="stdout" not in popen,
                          timeout=180, check=False, **popen)  # type: ignore[call-overload]  # fmt: skip


def test_an_output_that_cannot_grow_is_one_line_and_leaves_no_partial_file(
    weights: Path, clip: Path, tmp_path: Path
) -> None:
    labels, colour = tmp_path / "labels.mkv", tmp_path / "colour.mp4"
    done = _arseg(["segment", str(clip), "-o", str(tmp_path / "masks"), "--lossless", str(labels), "--video", str(colour),
                   "-w", str(weights), "-q", "-L", "1"], preexec_fn=_limit_file_size)  # fmt: skip
    message = done.stderr.decode()
    shown = [line for line in message.splitlines() if line.strip()]
    assert done.returncode == 1 and len(shown) == 1, message
    failed = labels if shown[0].startswith(f"error: cannot write {labels}: ") else colour
    assert shown[0].startswith(f"error: cannot write {failed}: File too large"), shown[0]
    assert not failed.exists()  # the output that failed is not left half-written under its name
    assert [p for p in tmp_path.rglob("*") if is_temp_output(p)] == []
    # The other outputs end cleanly, each one whole, with the same frames.
    pngs = sorted((tmp_path / "masks").glob("*.png"))
    assert 1 <= len(pngs) <= 20 and all(np.asarray(Image.open(p)).shape == (64, 96) for p in pngs)
    for video in {labels, colour} - {failed}:
        if video.exists():
            with av.open(str(video)) as container:
                assert sum(1 for _ in container.decode(video=0)) == len(pngs)


def test_raw_labels_to_a_full_device_are_one_line(weights: Path, clip: Path) -> None:
    with open("/dev/full", "wb") as full:
        done = _arseg(["segment", str(clip), "-o", "-", "-w", str(weights), "-q", "-L", "1", "--end", "3"],
                      stdout=full, stderr=subprocess.PIPE)  # fmt: skip
    message = done.stderr.decode()
    assert done.returncode == 1 and "Traceback" not in message, message
    shown = [line for line in message.splitlines() if line.strip()]
    assert shown == ["error: cannot write standard output: No space left on device (disk full?)"], message


# --- weights -------------------------------------------------------------------------------------


def _tensors_and_metadata(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}, dict(handle.metadata())


def _random_bytes(good: Path, folder: Path) -> Path:
    path = folder / "random.safetensors"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def _truncated(good: Path, folder: Path) -> Path:
    path = folder / "cut.safetensors"
    with open(good, "rb") as source:
        path.write_bytes(source.read(good.stat().st_size // 2))
    return path


class _RunsCode:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _pickle_safetensors(good: Path, folder: Path) -> Path:
    path = folder / "evil.safetensors"
    torch.save({"weight": _RunsCode(folder / "pwned")}, path)
    return path


def _pickle_pth(good: Path, folder: Path) -> Path:
    path = folder / "evil_camvid_psp18_1.0.pth"  # looks like an official HR checkpoint
    torch.save({"state_dict": {"weight": _RunsCode(folder / "pwned")}}, path)
    return path


def _rewritten(name: str, change: Callable[[dict[str, torch.Tensor], dict], None]) -> Callable[[Path, Path], Path]:
    def make(good: Path, folder: Path) -> Path:
        tensors, metadata = _tensors_and_metadata(good)
        meta = json.loads(metadata["meta"])
        change(tensors, meta)
        metadata["meta"] = json.dumps(meta)
        path = folder / f"{name}.safetensors"
        save_file(tensors, str(path), metadata=metadata)
        return path

    return make


def _other_arch(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    meta["arch"] = "camvid-psp18"  # bise18 tensors under another architecture's name


def _other_class_count(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    from arseg_cli.palettes import CITYSCAPES

    meta["classes"], meta["palette"] = list(CITYSCAPES.classes), [list(c) for c in CITYSCAPES.colors]


def _nan(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    name = next(key for key in sorted(tensors) if key.endswith("conv.weight"))
    tensors[name].view(-1)[0] = float("nan")


WEIGHTS_CASES = {
    "random-bytes": (_random_bytes, "not a safetensors file"),
    "truncated": (_truncated, "truncated"),
    "pickle-named-safetensors": (_pickle_safetensors, "PyTorch pickle"),
    "pickle-pth": (_pickle_pth, ""),
    "other-arch": (_rewritten("other-arch", _other_arch), "does not fit the model"),
    "other-class-count": (_rewritten("classes", _other_class_count), "shape"),
    "nan": (_rewritten("nan", _nan), "NaN or Inf"),
}


@pytest.mark.parametrize("case", WEIGHTS_CASES)
def test_bad_weights_are_one_line_before_anything_is_written(
    weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    make, words = WEIGHTS_CASES[case]
    bad = make(weights, tmp_path)
    clip = valid_clip(tmp_path / "clip.mp4", frames=2)
    assert main(["segment", str(clip), "-o", str(tmp_path / "masks"), "-w", str(bad)]) == 1
    err = " ".join(capsys.readouterr().err.split())  # the console wraps at its width
    assert err.startswith("error: ") and err.count("error:") == 1 and "Traceback" not in err, err
    assert words in err and "internal error" not in err, err
    assert not (tmp_path / "masks").exists() and not (tmp_path / "pwned").exists()
