"""The HEVC motion layer under AddressSanitizer and UBSan: random pictures (tests/native/hevc_motion_fuzz.c),
mostly well-formed with rare bad values. No crash, no access outside the arrays, one-line reasons."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NATIVE = ROOT / "arseg_cli" / "video" / "hevc" / "native"
SOURCES = [ROOT / "tests" / "native" / "hevc_motion_fuzz.c"] + [
    NATIVE / name for name in ("hevc_motion.c", "hevc_refs.c", "hevc_mvpred.c")
]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        pytest.skip("no C compiler")
    binary = tmp_path_factory.mktemp("fuzz") / "hevc_motion_fuzz"
    build = subprocess.run(
        [compiler, "-std=c99", "-O1", "-g", *SANITIZE, f"-I{NATIVE}", *map(str, SOURCES), "-o", str(binary)],
        capture_output=True,
        text=True,
    )
    if build.returncode != 0 and "sanitize" in build.stderr:
        pytest.skip(f"the compiler has no sanitizer runtime: {build.stderr.strip().splitlines()[-1]}")
    assert build.returncode == 0, build.stderr
    return binary


@pytest.mark.parametrize("seed", [0, 1])
def test_random_pictures_never_crash_or_leave_the_arrays(fuzzer: Path, seed: int) -> None:
    run = subprocess.run([str(fuzzer), "8000", str(seed)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    ok, rejected = (int(word) for word in run.stdout.split()[1::2])
    assert ok > 2000 and rejected > 100  # both the derivations and the checks ran
