"""`arseg train` end to end on a tiny SynthStreet set: phase hr then phase ar, the provenance in the
weights, the files beside them, refusals and one-line errors."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from arseg_cli.cli import app
from arseg_cli.model.weights import read_info, read_state_dict
from arseg_cli.synth import SynthSpec, write_dataset
from arseg_cli.train.metrics import read_metrics

# One clip of 6 frames, L = 4: the frames 3, 4, 5 have a keyframe at every distance 1..3.
SPEC = SynthSpec(clips=1, frames=6, height=64, width=96, seed=3, keyint=4, crf=20, preset="ultrafast")
COMMON = ("--split", "all", "-L", "4", "--batch", "2", "--steps", "2", "--crop", "64x96")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, SPEC)
    return root


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def _convert_a_frame_on_all_threads() -> None:
    """A PyAV conversion with swscale's default thread pool in this process (PyAV 18.1.1 keeps it: a
    DataLoader worker forked from here afterwards waited for ever on its threads)."""
    frame = av.VideoFrame.from_ndarray(np.zeros((64, 96, 3), np.uint8), format="rgb24")
    frame.reformat(format="yuv420p").to_ndarray(format="rgb24")


def test_hr_then_ar_write_weights_with_provenance(data: Path, tmp_path: Path) -> None:
    hr = tmp_path / "hr.safetensors"
    code, output = _run("train", str(data), "--phase", "hr", "-o", str(hr), *COMMON)
    assert code == 0, output
    assert str(hr) in output and "train hr: step 2/2 loss" in output  # not a terminal: plain progress lines
    info = read_info(hr)
    facts = info.meta.provenance
    assert info.branches == ("hr",) and info.meta.scale is None and info.meta.keyframe_interval == 4
    assert facts["command"].startswith(f"arseg train {data} --output {hr} --phase hr --arch camvid-bise18")
    assert "--steps 2" in facts["command"] and "--crop 64x96" in facts["command"]
    assert facts["data"]["root"] == str(data.resolve()) and facts["data"]["synth_seed"] == SPEC.seed
    assert facts["data"]["layout"] == "synthstreet" and facts["data"]["labelled_frames"] == 3
    assert facts["steps"] == 2 and math.isfinite(facts["final_loss"]) and facts["seconds"] >= 0
    assert facts["date"].startswith("20") and facts["config"]["optimizer"] == "adam"
    assert [r["step"] for r in read_metrics(hr.with_name("hr.safetensors.metrics.jsonl"))] == [1, 2]
    assert hr.with_name("hr.safetensors.ckpt").is_file()

    ar = tmp_path / "ar.safetensors"
    _convert_a_frame_on_all_threads()  # as a caller may have before training; the loader workers must not hang
    code, output = _run(
        "train", str(data), "--phase", "ar", "--hr", str(hr), "-o", str(ar), "--fst-weight", "0.5", "--fp16", "--workers", "2", *COMMON
    )  # fmt: skip
    assert code == 0, output
    info = read_info(ar)
    assert info.storage_dtype == "float16"
    assert info.branches == ("hr", "lr") and info.meta.scale == 0.5 and info.meta.has_creff
    assert info.meta.lr_classifier == "shared"
    assert info.meta.provenance["hr_weights"] == str(hr.resolve())
    assert info.meta.provenance["config"]["fst_weight"] == 0.5 and info.meta.provenance["config"]["plain_steps"] == 1
    command = info.meta.provenance["command"]
    assert "--aug-scale 0.5 2.5" in command  # a tuple option as the shell takes it: the command reruns
    config = info.meta.provenance["config"]
    assert config["loss"] == "ohem" and config["creff_init"] == "kaiming" and config["augment_variants"] == 8
    assert config["distance"] == "official" and config["scale_range"] == [0.5, 2.5] and config["jitter"] == 0.5
    assert (tmp_path / "ar.safetensors.features" / "cache.json").is_file()  # phase ar cached the HR features
    _, hr_state = read_state_dict(hr)
    _, ar_state = read_state_dict(ar)
    # The HR branch is phase hr's result (stored as float16 here: equal after the same rounding).
    assert all(torch.equal(ar_state[k], v.half().float() if v.is_floating_point() else v) for k, v in hr_state.items())


def test_refuses_to_overwrite_and_resumes(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    assert _run("train", str(data), "--phase", "hr", "-o", str(out), *COMMON)[0] == 0
    before = out.read_bytes()
    code, output = _run("train", str(data), "--phase", "hr", "-o", str(out), *COMMON)
    assert code == 1 and "exists" in _one_error_line(output) and out.read_bytes() == before
    out.unlink()  # weights gone, checkpoint and metrics still there: a new run must not clobber them
    code, output = _run("train", str(data), "--phase", "hr", "-o", str(out), *COMMON)
    assert code == 1 and "--resume" in _one_error_line(output)
    code, output = _run("train", str(data), "--phase", "hr", "-o", str(out), "--resume", *COMMON)
    assert code == 0, output  # nothing left to train: the weights come from the checkpoint
    state = read_state_dict(out)[1]
    assert all(torch.equal(state[k], v) for k, v in read_state_dict_from(before, tmp_path).items())


def test_ar_with_shared_backbone_trains_only_the_lr_heads(data: Path, tmp_path: Path) -> None:
    hr = tmp_path / "hr.safetensors"
    assert _run("train", str(data), "--phase", "hr", "-o", str(hr), "--pair-frames", "source", *COMMON)[0] == 0
    assert read_info(hr).meta.provenance["config"]["pair_frames"] == "source"
    ar = tmp_path / "ar.safetensors"
    code, output = _run("train", str(data), "--phase", "ar", "--hr", str(hr), "-o", str(ar), "--lr-backbone", "shared", *COMMON)
    assert code == 0, output
    info = read_info(ar)
    assert info.meta.lr_backbone == "shared" and info.meta.provenance["config"]["lr_backbone"] == "shared"
    _, hr_state = read_state_dict(hr)
    _, ar_state = read_state_dict(ar)
    backbone = [k for k in hr_state if k.startswith("hr.cp.")]
    assert backbone and all(torch.equal(ar_state[k], hr_state[k]) for k in backbone)
    assert all(torch.equal(ar_state["lr" + k[2:]], hr_state[k]) for k in backbone)  # the LR branch runs it
    heads = [k for k in ar_state if k.startswith("lr.ffm.") and ar_state[k].is_floating_point()]
    assert any(not torch.equal(ar_state[k], ar_state["hr" + k[2:]]) for k in heads)  # and trains its heads


def read_state_dict_from(content: bytes, tmp_path: Path) -> dict[str, torch.Tensor]:
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(content)
    return read_state_dict(copy)[1]


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("--phase", "hr", "--steps", "2", "--epochs", "1"), 2, "not both"),
        (("--phase", "ar", "--steps", "2"), 2, "--hr"),
        (("--phase", "hr", "--crop", "64by96"), 2, "HxW"),
        (("--phase", "hr", "--arch", "nope-net"), 2, "nope-net"),
        (("--phase", "hr", "--split", "all", "-L", "4"), 1, "fewer than one global batch"),  # 3 items < batch 8
        (("--phase", "hr", "--split", "all", "-L", "4", "--batch", "2", "--resume"), 1, "no checkpoint"),
        (("--phase", "hr", "--split", "all", "-L", "4", "--batch", "2", "--lr-backbone", "shared"), 2, "phase ar"),
    ],
)
def test_errors_are_one_line(data: Path, tmp_path: Path, args: tuple[str, ...], code: int, words: str) -> None:
    got, output = _run("train", str(data), "-o", str(tmp_path / "w.safetensors"), *args)
    assert got == code and words in _one_error_line(output), output
    assert not (tmp_path / "w.safetensors").exists()


def test_missing_data_is_one_line(tmp_path: Path) -> None:
    code, output = _run("train", str(tmp_path / "none"), "--phase", "hr", "-o", str(tmp_path / "w.safetensors"))
    assert code == 1 and "does not exist" in _one_error_line(output)


def test_phase_lr_trains_an_lr_only_file_that_eval_reports_beside_hr_and_lr(data: Path, tmp_path: Path) -> None:
    import json

    hr, lr = tmp_path / "hr.safetensors", tmp_path / "lr.safetensors"
    assert _run("train", str(data), "--phase", "hr", "-o", str(hr), *COMMON)[0] == 0
    code, output = _run("train", str(data), "--phase", "lr", "--scale", "0.5", "-o", str(lr), "--loss", "ce", *COMMON)
    assert code == 0, output
    info = read_info(lr)
    assert info.branches == ("lr",) and info.meta.scale == 0.5 and not info.meta.has_creff
    assert info.meta.provenance["config"]["phase"] == "lr" and info.meta.provenance["config"]["loss"] == "ce"
    code, output = _run("eval", str(data), "--weights", str(hr), "--lr-weights", str(lr), "--split", "all", "-L", "4", "--json")
    assert code == 0, output
    report = json.loads(output.splitlines()[-1])
    assert {"hr", "lr", "lr_trained"} <= report.keys() and report["lr_kind"] == "hr-downscaled"
    assert len(report["lr_trained"]["per_d"]) == 4 and report["lr_weights"] == str(lr)
    code, output = _run("eval", str(data), "--weights", str(hr), "--lr-weights", str(hr), "--split", "all", "-L", "4")
    assert code == 2 and "plain LR network" in _one_error_line(output)
    code, output = _run("train", str(data), "--phase", "lr", "--hr", str(hr), "-o", str(tmp_path / "x.safetensors"), *COMMON)
    assert code == 2 and "--hr is for phase ar" in _one_error_line(output)


def test_ar_start_continues_phase_ar_from_ar_weights(data: Path, tmp_path: Path) -> None:
    hr, ar, more = tmp_path / "hr.safetensors", tmp_path / "ar.safetensors", tmp_path / "more.safetensors"
    assert _run("train", str(data), "--phase", "hr", "-o", str(hr), *COMMON)[0] == 0
    assert _run("train", str(data), "--phase", "ar", "--hr", str(hr), "-o", str(ar), "--lr-backbone", "shared", *COMMON)[0] == 0
    code, output = _run("train", str(data), "--phase", "ar", "--hr", str(hr), "--ar-start", str(ar), "-o", str(more),
                        "--lr-backbone", "shared", "--lr", "1e-12", *COMMON)  # fmt: skip
    assert code == 0, output
    assert read_info(more).meta.provenance["ar_start"] == str(ar.resolve())
    _, started = read_state_dict(ar)
    _, continued = read_state_dict(more)
    creff = [k for k in started if k.startswith("lr.fuse_attention.")]
    assert creff and all(torch.allclose(continued[k], started[k], rtol=0, atol=1e-6) for k in creff)  # lr 1e-12: unmoved
    line = _one_error_line(_run("train", str(data), "--phase", "ar", "--hr", str(hr), "--ar-start", str(hr),
                                "-o", str(tmp_path / "x.safetensors"), "--lr-backbone", "shared", *COMMON)[1])  # fmt: skip
    assert "no LR branch with CReFF" in line and not (tmp_path / "x.safetensors").exists()
    code, output = _run("train", str(data), "--phase", "hr", "--ar-start", str(ar), "-o", str(tmp_path / "y.safetensors"), *COMMON)
    assert code == 2 and "--ar-start is for phase ar" in output
    other_hr = tmp_path / "other-hr.safetensors"
    assert _run("train", str(data), "--phase", "hr", "-o", str(other_hr), "--seed", "1", *COMMON)[0] == 0
    line = _one_error_line(_run("train", str(data), "--phase", "ar", "--hr", str(other_hr), "--ar-start", str(ar),
                                "-o", str(tmp_path / "z.safetensors"), "--lr-backbone", "shared", *COMMON)[1])  # fmt: skip
    assert "another HR network" in line and not (tmp_path / "z.safetensors").exists()
    rebased = tmp_path / "rebased.safetensors"  # benchmarks/rebase_ar.py: AR's LR branch on the other HR network
    script = Path(__file__).parents[1] / "benchmarks" / "rebase_ar.py"
    done = subprocess.run([sys.executable, str(script), "--ar", str(ar), "--hr", str(other_hr), "-o", str(rebased)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    again = subprocess.run([sys.executable, str(script), "--ar", str(tmp_path / "gone.safetensors"), "--hr", str(other_hr),
                            "-o", str(tmp_path / "v.safetensors")], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "does not exist" in again.stderr, again.stderr
    _, moved = read_state_dict(rebased)
    _, other = read_state_dict(other_hr)
    shared = ("lr.cp.", "lr.final_conv.", "lr.conv_out.conv_out.")  # bise18's shared context path; the classifier, twice
    assert all(torch.equal(moved[k], other[k]) for k in other if k.startswith("hr."))
    assert all(torch.equal(moved[k], other["hr." + k[3:]]) for k in moved if k.startswith(shared))
    lr_own = [k for k in started if k.startswith("lr.") and not k.startswith(shared)]
    assert lr_own and all(torch.equal(moved[k], started[k]) for k in lr_own)
    assert _run("train", str(data), "--phase", "ar", "--hr", str(other_hr), "--ar-start", str(rebased), "-o", str(tmp_path / "w.safetensors"),
                "--lr-backbone", "shared", *COMMON)[0] == 0  # fmt: skip


def _learnt(path: Path) -> dict[str, torch.Tensor]:
    """The weights' learnt tensors (BatchNorm's running statistics move in training whatever the rate)."""
    _, state = read_state_dict(path)
    return {k: v for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def test_start_fine_tunes_phases_hr_and_lr_from_trained_networks(data: Path, tmp_path: Path) -> None:
    hr, lr = tmp_path / "hr.safetensors", tmp_path / "lr.safetensors"
    assert _run("train", str(data), "--phase", "hr", "-o", str(hr), *COMMON)[0] == 0
    assert _run("train", str(data), "--phase", "lr", "--scale", "0.5", "-o", str(lr), *COMMON)[0] == 0
    for phase, start, extra in (("hr", hr, ()), ("lr", lr, ("--scale", "0.5"))):
        tuned, fresh = tmp_path / f"{phase}-tuned.safetensors", tmp_path / f"{phase}-fresh.safetensors"
        code, output = _run("train", str(data), "--phase", phase, "--start", str(start), "-o", str(tuned), "--lr", "1e-12", *extra, *COMMON)
        assert code == 0, output
        assert read_info(tuned).meta.provenance["start"] == str(start.resolve())
        assert _run("train", str(data), "--phase", phase, "-o", str(fresh), "--seed", "1", "--lr", "1e-12", *extra, *COMMON)[0] == 0
        started, continued, new = _learnt(start), _learnt(tuned), _learnt(fresh)
        assert continued.keys() == started.keys()
        assert all(torch.allclose(continued[k], started[k], rtol=0, atol=1e-6) for k in started)  # lr 1e-12: unmoved
        assert not all(torch.allclose(new[k], started[k], rtol=0, atol=1e-6) for k in started)  # not what a fresh run gives
    refusals = (
        (("--phase", "hr", "--start", str(lr)), "no HR network to start phase hr from"),
        (("--phase", "lr", "--scale", "0.5", "--start", str(hr)), "not a plain LR network"),
        (("--phase", "lr", "--scale", "0.25", "--start", str(lr)), "LR network at scale 0.5; this run trains scale 0.25"),
        (("--phase", "ar", "--hr", str(hr), "--start", str(hr)), "--start is for phases hr and lr"),
    )
    for args, message in refusals:
        code, output = _run("train", str(data), *args, "-o", str(tmp_path / "x.safetensors"), *COMMON)
        assert code != 0 and message in _one_error_line(output), output
    assert not (tmp_path / "x.safetensors").exists()


def test_gate_only_trains_the_fusion_gate_and_nothing_else(data: Path, tmp_path: Path) -> None:
    hr, ar, gated = tmp_path / "hr.safetensors", tmp_path / "ar.safetensors", tmp_path / "gated.safetensors"
    assert _run("train", str(data), "--phase", "hr", "-o", str(hr), *COMMON)[0] == 0
    assert _run("train", str(data), "--phase", "ar", "--hr", str(hr), "-o", str(ar), "--lr-backbone", "shared", *COMMON)[0] == 0
    gate_args = ("--phase", "ar", "--hr", str(hr), "--lr-backbone", "shared", "--fusion-gate", "--gate-only", "--lr", "0.01")
    code, output = _run("train", str(data), *gate_args, "--ar-start", str(ar), "-o", str(gated), *COMMON)
    assert code == 0, output
    info = read_info(gated)
    assert info.meta.fusion_gate and info.meta.provenance["config"]["gate_only"]
    assert info.meta.provenance["config"]["plain_steps"] == 0  # every step goes through CReFF and the gate
    _, started = read_state_dict(ar)
    _, trained = read_state_dict(gated)
    gate = {k for k in trained if k.startswith("lr.fusion_gate.")}
    assert gate and gate.isdisjoint(started) and set(trained) - gate == set(started)
    assert all(torch.equal(trained[k], started[k]) for k in started)  # frozen, BatchNorm statistics included
    assert trained["lr.fusion_gate.weigh.weight"].abs().max() > 0  # the gate started at zero and moved
    code, output = _run("eval", str(data), "--weights", str(gated), "--split", "all", "-L", "4", "--json")
    assert code == 0, output
    line = _one_error_line(_run("train", str(data), *gate_args, "-o", str(tmp_path / "x.safetensors"), *COMMON)[1])
    assert "give --ar-start" in line
    code, output = _run("train", str(data), "--phase", "ar", "--hr", str(hr), "--gate-only", "--ar-start", str(ar),
                        "-o", str(tmp_path / "y.safetensors"), "--lr-backbone", "shared", *COMMON)  # fmt: skip
    assert code == 2 and "needs the fusion gate" in _one_error_line(output)
    line = _one_error_line(_run("train", str(data), "--phase", "ar", "--hr", str(hr), "--ar-start", str(gated),
                                "-o", str(tmp_path / "z.safetensors"), "--lr-backbone", "shared", *COMMON)[1])  # fmt: skip
    assert "has a fusion gate" in line
    assert not any((tmp_path / name).exists() for name in ("x.safetensors", "y.safetensors", "z.safetensors"))


def test_new_weights_pad_their_input_and_the_feature_cache_tells_paddings_apart(data: Path, tmp_path: Path) -> None:
    hr, plain = tmp_path / "hr.safetensors", tmp_path / "plain.safetensors"
    assert _run("train", str(data), "--phase", "hr", "-o", str(hr), *COMMON)[0] == 0
    assert _run("train", str(data), "--phase", "hr", "-o", str(plain), "--input-multiple", "1", *COMMON)[0] == 0
    assert read_info(hr).meta.input_multiple == 32 and read_info(plain).meta.input_multiple == 1  # bise18's default, or as asked
    assert "--input-multiple 32" in read_info(hr).meta.provenance["command"]  # the default, spelled out
    shown = {line.split("  ", 1)[0]: line.split("  ", 1)[1].strip() for line in _run("weights", "info", str(hr))[1].splitlines()}
    assert shown["input padding"] == "to a multiple of 32"
    features = tmp_path / "features"
    ar = ("train", str(data), "--phase", "ar", "--hr", str(hr), "--lr-backbone", "shared", "--feature-cache", str(features), *COMMON)
    assert _run(*ar, "-o", str(tmp_path / "ar.safetensors"))[0] == 0
    assert read_info(tmp_path / "ar.safetensors").meta.input_multiple == 32
    code, output = _run(*ar, "-o", str(tmp_path / "ar1.safetensors"), "--input-multiple", "1")
    assert code != 0 and "input_multiple" in _one_error_line(output)  # the cache names the padding it was made with
    assert not (tmp_path / "ar1.safetensors").exists()
