"""The HEVC motion layer's C code on its own, built with AddressSanitizer and UBSan:

- hand-made pictures (tests/native/hevc_motion_cases.c) for what libx265 streams never use: POC wrap and
  the prevTid0Pic rule, list modification, long-term references with and without MSB, the 16-bit wrap of
  mvp + mvd, zero merge candidates, the 8x4 bi-prediction restriction;
- random pictures (tests/native/hevc_motion_fuzz.c), mostly well-formed with rare bad values: no crash,
  no access outside the arrays, one-line reasons.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NATIVE = ROOT / "arseg_cli" / "video" / "hevc" / "native"
MOTION_SOURCES = [NATIVE / name for name in ("hevc_motion.c", "hevc_refs.c", "hevc_mvpred.c")]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


def build(program: str, out_dir: Path) -> Path:
    """Compiles tests/native/<program>.c with the motion layer, sanitised; skips without a compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        pytest.skip("no C compiler")
    binary = out_dir / program
    sources = [ROOT / "tests" / "native" / f"{program}.c", *MOTION_SOURCES]
    result = subprocess.run(
        [compiler, "-std=c99", "-O1", "-g", *SANITIZE, f"-I{NATIVE}", *map(str, sources), "-o", str(binary)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 and "sanitize" in result.stderr:
        pytest.skip(f"the compiler has no sanitizer runtime: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr
    return binary


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hevc_native")


def test_hand_made_pictures_get_the_motion_the_spec_derives(out_dir: Path) -> None:
    run = subprocess.run([str(build("hevc_motion_cases", out_dir))], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("pass ")


@pytest.mark.parametrize("seed", [0, 1])
def test_random_pictures_never_crash_or_leave_the_arrays(out_dir: Path, seed: int) -> None:
    fuzzer = out_dir / "hevc_motion_fuzz"
    if not fuzzer.exists():
        fuzzer = build("hevc_motion_fuzz", out_dir)
    run = subprocess.run([str(fuzzer), "8000", str(seed)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    ok, rejected = (int(word) for word in run.stdout.split()[1::2])
    assert ok > 2000 and rejected > 100  # both the derivations and the checks ran
