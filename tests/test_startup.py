"""Start-up: `arseg --version` and `--help` must not import the heavy libraries (torch, PyAV, NumPy).

Checked through `sys.modules` of a fresh interpreter, not by timing (benchmarks/bench_startup.py times it).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "av", "numpy", "PIL", "safetensors", "onnxruntime", "cv2")

_CHILD = """
import contextlib, io, json, sys
from arseg_cli.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "out": out.getvalue(),
                  "heavy": sorted({m.split(".")[0] for m in sys.modules} & set(%r))}))
""" % (HEAVY,)


def _run(*argv: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "argv",
    [("--version",), ("--help",), ("segment", "--help"), ("info", "--help"), ("motion", "--help"), ("encode", "--help")],
)
def test_cli_answers_without_heavy_imports(argv: tuple[str, ...]) -> None:
    result = _run(*argv)
    assert result["code"] == 0
    assert result["out"], "the command printed nothing"
    assert result["heavy"] == [], f"`arseg {' '.join(argv)}` imported {result['heavy']}"


def test_version_text() -> None:
    from arseg_cli import __version__

    assert _run("--version")["out"].strip() == f"arseg {__version__}"


def test_check_sees_heavy_imports(tmp_path) -> None:
    """The check itself: a command that gets as far as its work (here a missing input) is seen importing torch."""
    result = _run("segment", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "out"), "--device", "cpu")
    assert result["code"] == 1
    assert "torch" in result["heavy"]
