"""The opt-in compiled CReFF attention (`--compile`, `ARSeg.use_compiled_attention`): the same numbers as
the definition through both of its compiled variants, a warning and the uncompiled kernel when there is
no compiler, and the CLI option, a value given to the model it runs, not a process-wide switch.
Compiling costs ~12 s per variant on a cold inductor cache (less warm)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from _segment_fixtures import tiny_weights, write_test_clip
from arseg_cli.cli import main
from arseg_cli.model._compiled_attention import compile_failed
from arseg_cli.model._local_attention import _Tiles, fused_creff
from arseg_cli.model.creff import CReFF, local_attention, warp_feature
from arseg_cli.synth import SynthSpec, write_dataset
from test_creff import F64, random_creff

# What inductor needs to build its C++ here: a compiler, and Python's headers (for its bindings).
needs_compiler = pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "g++")) is None or not Path(sysconfig.get_paths()["include"], "Python.h").is_file(),
    reason="torch.compile needs a C++ compiler (g++ or $CXX) and Python's headers",
)


def _band_path_refused(*_: object) -> None:
    raise AssertionError("the band-GEMM attention ran although the compiled one was enabled")


@needs_compiler
@pytest.mark.parametrize("workers", [1, 2], ids=["one-worker-all-threads", "two-single-thread-workers"])
def test_compiled_attention_equals_the_definition(workers: int, monkeypatch: pytest.MonkeyPatch, two_torch_threads: None) -> None:
    """float64, so the only difference is summation order: 1e-10 as for the uncompiled kernel. Two
    intra-op threads: one worker runs a copy compiled for 2 OpenMP threads, two workers one for 1."""
    monkeypatch.setattr(_Tiles, "_attend", _band_path_refused)
    creff = random_creff(5, "official", seed=workers)
    lr, key = torch.randn(2, 5, 6, 7, dtype=F64), torch.randn(2, 5, 11, 13, dtype=F64)
    flow = 3.0 * torch.randn(2, 2, 11, 13, dtype=F64)
    with torch.no_grad():
        up = F.interpolate(lr, size=(11, 13), mode="bilinear", align_corners=True)
        warped = warp_feature(key, flow, "official")
        q, k, v = creff.lr_query_conv(up), creff.hr_key_conv(warped), creff.hr_value_conv(warped)
        expected = up + local_attention(q, k, v)
        convs = (creff.lr_query_conv, creff.hr_key_conv, creff.hr_value_conv)
        fused = fused_creff(lr, key, flow, convs, warp="official", window=7, rows=3, workers=workers, compiled=True)
        again = fused_creff(lr, key, flow, convs, warp="official", window=7, rows=5, workers=workers, compiled=True)  # other tiles
    assert not compile_failed()  # a failed compile would have fallen back to the band GEMMs
    torch.testing.assert_close(fused, expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(again, expected, rtol=0, atol=1e-10)


_NO_COMPILER_SCRIPT = """
import json, logging, torch
from arseg_cli.model._compiled_attention import compile_failed
from arseg_cli.model.creff import CReFF
records = []
handler = logging.Handler(); handler.emit = records.append
logging.getLogger("arseg_cli").addHandler(handler)
torch.manual_seed(0)
creff = CReFF(4).eval()
lr, key, flow = torch.randn(1, 4, 6, 7), torch.randn(1, 4, 11, 13), torch.randn(1, 2, 22, 26)
with torch.inference_mode():
    expected = creff(lr, key, flow)
    creff.compiled_attention = True
    outputs = [creff(lr, key, flow) for _ in range(2)]
print(json.dumps({"equal": all(torch.equal(o, expected) for o in outputs), "enabled": not compile_failed(),
                  "warnings": [r.getMessage() for r in records if r.levelno == logging.WARNING]}))
"""


def test_without_a_compiler_it_warns_once_and_runs_the_uncompiled_kernel(tmp_path: Path) -> None:
    env = {**os.environ, "CXX": str(tmp_path / "no-such-c++"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache"),
           "ARSEG_NATIVE_CREFF": "0"}  # fmt: skip  # the uncompiled kernel here is the PyTorch one
    done = subprocess.run([sys.executable, "-c", _NO_COMPILER_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["equal"] and not result["enabled"]
    assert len(result["warnings"]) == 1 and "using the uncompiled kernel" in result["warnings"][0]


@needs_compiler
def test_bench_compile_reports_the_compiled_attention(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_Tiles, "_attend", _band_path_refused)
    assert main(["bench", "--size", "48x64", "--repeats", "1", "-L", "4", "--device", "cpu", "--compile", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["compiled_attention"] is True


@needs_compiler
def test_segment_compile_gives_the_labels_of_the_uncompiled_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """float32 scores differ by summation order only (~1e-6): labels agree except where two classes tie
    that closely, which a random tiny model makes rare; 99.9% allows a few such pixels."""
    monkeypatch.setenv("ARSEG_WEIGHTS", str(tiny_weights(tmp_path / "tiny.safetensors")))
    clip = write_test_clip(tmp_path / "clip.mp4", 9)
    assert main(["segment", str(clip), "-o", str(tmp_path / "plain"), "-q"]) == 0
    monkeypatch.setattr(_Tiles, "_attend", _band_path_refused)
    assert main(["segment", str(clip), "-o", str(tmp_path / "compiled"), "-q", "--compile", "--device", "cpu"]) == 0
    assert not compile_failed()

    def labels(directory: Path) -> np.ndarray:
        return np.stack([np.asarray(Image.open(p)) for p in sorted(directory.glob("*.png"))])

    plain, compiled_labels = labels(tmp_path / "plain"), labels(tmp_path / "compiled")
    assert plain.shape == compiled_labels.shape == (9, *plain.shape[1:])
    assert (plain == compiled_labels).mean() >= 0.999


@needs_compiler
def test_eval_compile_scores_what_the_uncompiled_kernel_scores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """mIoU rounded to 1e-6 over a few frames: the ~1e-6 score differences flip no label here."""
    weights = tiny_weights(tmp_path / "tiny.safetensors")
    data = tmp_path / "synth"
    write_dataset(data, SynthSpec(clips=1, frames=5, height=64, width=96, seed=3, keyint=4, crf=20, preset="ultrafast"))
    args = ["eval", str(data), "--split", "all", "-w", str(weights), "-L", "4", "--modes", "ar", "--json", "--device", "cpu"]
    assert main(args) == 0
    plain = json.loads(capsys.readouterr().out)
    monkeypatch.setattr(_Tiles, "_attend", _band_path_refused)
    assert main([*args, "--compile"]) == 0
    compiled_run = json.loads(capsys.readouterr().out)
    assert not compile_failed()
    assert compiled_run["ar"]["per_d"] == plain["ar"]["per_d"]


@pytest.mark.parametrize("command", ["segment", "bench"])
def test_compile_with_onnxruntime_is_a_one_line_error(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = [str(tmp_path / "in.mp4"), "-o", str(tmp_path / "out")] if command == "segment" else []
    assert main([command, *target, "--backend", "onnxruntime", "--onnx", str(tmp_path), "--compile"]) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "--compile is for the torch backend" in message and message.count("error:") == 1
    assert not (tmp_path / "out").exists()


def test_compile_is_a_setting_of_the_model_not_of_the_process() -> None:
    """One model asking for the compiled attention leaves every other model (and CReFF) as it was."""
    from arseg_cli.model import arch_config, build_arseg

    torch.manual_seed(0)
    first, second = (build_arseg(arch_config("camvid-bise18").model_meta(scale=0.5)).eval() for _ in range(2))
    assert first.use_compiled_attention(True) is first
    creffs = [m for m in first.modules() if isinstance(m, CReFF)]
    assert creffs and all(m.compiled_attention for m in creffs)
    assert first.compiled_attention == (not compile_failed())
    assert not second.compiled_attention and not CReFF(4).compiled_attention
    assert not first.use_compiled_attention(False).compiled_attention
