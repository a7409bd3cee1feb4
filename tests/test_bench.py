"""`arseg bench`: its MAC figures are the model's accounting exactly, the JSON schema, the latency
statistics, the video stages, and bad options. Latency is measured only at tiny sizes, never asserted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from _onnx_fixtures import write_small_clip
from arseg_cli.bench import BenchConfig, LatencyStats, interleaved, run_bench
from arseg_cli.bench.reference import dataset_size
from arseg_cli.cli import main
from arseg_cli.model import arch_config, list_archs
from arseg_cli.model.flops import branch_costs, paper_costs

SUMMARY = re.compile(r"^AR\^0\.5 vs 1\.0x: \d+\.\d\dx fewer MACs, \d+\.\d\dx faster \(measured\)$")


def _bench_json(capsys: pytest.CaptureFixture, *args: str) -> dict:
    assert main(["bench", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("arch", list_archs())
def test_macs_are_the_models_accounting_exactly(arch: str) -> None:
    report = run_bench(BenchConfig(archs=(arch,), scales=(0.3, 0.5), keyframe_interval=12, timing=False))
    (result,) = report["archs"]
    height, width = dataset_size(arch)
    assert result["size"] == [height, width]
    assert [row["scale"] for row in result["scales"]] == [1.0, 0.5, 0.3]
    for row in result["scales"]:
        costs = branch_costs(arch, height, width, row["scale"])
        expected = {name: cost.macs for name, cost in costs.parts().items()}
        assert {k: v for k, v in row["macs"].items() if k != "ar_average"} == expected
        assert row["flops"]["hr"] == 2 * costs.hr.macs
        paper = paper_costs(arch, height, width, row["scale"])
        assert row["paper_macs"] == {"hr": paper["hr"].macs, "lr": paper["lr"].macs}
        if row["scale"] == 1.0:
            assert row["macs"]["ar_average"] == costs.hr.macs and row["macs_ratio_vs_1x"] == 1.0
        else:
            average = (costs.hr.macs + 11 * (costs.lr_features.macs + costs.creff.macs + costs.classifier.macs)) / 12
            assert row["macs"]["ar_average"] == pytest.approx(average, rel=1e-12)
            assert row["macs_ratio_vs_1x"] == pytest.approx(costs.hr.macs / average, rel=1e-12)


@pytest.mark.parametrize("arch", list_archs())
def test_the_paper_table_is_what_the_paper_convention_reproduces(arch: str) -> None:
    figures = arch_config(arch).paper
    counted = paper_costs(arch, *dataset_size(arch), figures.scale)
    assert counted["hr"].gmacs == pytest.approx(figures.hr_gmacs, rel=0.01)
    assert counted["lr"].gmacs == pytest.approx(figures.lr_gmacs, rel=0.01)


def test_json_report_with_latency(capsys: pytest.CaptureFixture) -> None:
    report = _bench_json(capsys, "--size", "48x64", "--repeats", "2", "--warmup", "1", "-L", "4", "--device", "cpu")
    assert report["backend"] == "torch" and report["keyframe_interval"] == 4 and report["repeats"] == 2
    assert report["compiled_attention"] is False  # only with --compile (tests/test_compiled_attention.py)
    assert {"macs", "flops", "paper_macs", "ar_average"} <= set(report["convention"])
    assert report["machine"]["device"] == "cpu" and report["machine"]["torch"]
    (result,) = report["archs"]
    assert result["arch"] == "camvid-bise18" and result["size"] == [48, 64] and result["weights"].startswith("random")
    assert result["paper"]["miou_ar"] == 70.37
    baseline, half = result["scales"]
    assert set(baseline["latency"]) == {"hr", "ar_average_s"}
    latency = half["latency"]
    assert set(latency) == {"hr", "lr", "creff", "nonkeyframe", "ar_average_s"}
    for name in ("hr", "lr", "creff", "nonkeyframe"):
        stats = latency[name]
        assert stats["repeats"] == 2 and stats["warmup"] == 1 and len(stats["runs_s"]) == 2
        assert 0 < stats["min_s"] <= stats["median_s"] <= stats["p90_s"] <= max(stats["runs_s"])
    hr, nonkey = latency["hr"]["median_s"], latency["nonkeyframe"]["median_s"]
    assert latency["ar_average_s"] == pytest.approx((hr + 3 * nonkey) / 4)
    assert half["speedup_vs_1x"] == pytest.approx(hr / latency["ar_average_s"])
    assert baseline["speedup_vs_1x"] == 1.0
    assert len(result["summary"]) == 1 and SUMMARY.match(result["summary"][0])


def test_latency_times_the_label_calls_the_pipeline_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    """`hr` and `nonkeyframe` time keyframe_labels / nonkeyframe_labels (what GroupStep runs), not the
    image-size scores that `arseg segment` never computes."""
    from arseg_cli.bench.latency import measure_stages
    from arseg_cli.model import build_arseg
    from arseg_cli.model.architecture import CAMVID_MEAN, CAMVID_STD
    from arseg_cli.model.arseg import ARSeg
    from arseg_cli.model.meta import ModelMeta
    from arseg_cli.palettes import CAMVID

    calls: list[str] = []
    for name in ("keyframe", "nonkeyframe", "keyframe_labels", "nonkeyframe_labels"):
        original = getattr(ARSeg, name)
        monkeypatch.setattr(ARSeg, name, lambda self, *a, _f=original, _n=name, **k: calls.append(_n) or _f(self, *a, **k))
    meta = ModelMeta("camvid-bise18", CAMVID.classes, CAMVID.colors, CAMVID_MEAN, CAMVID_STD, scale=0.5, keyframe_interval=4)
    measure_stages(build_arseg(meta).eval(), (32, 48), [0.5], repeats=2, warmup=1)
    assert "keyframe" not in calls and "nonkeyframe" not in calls
    assert calls.count("keyframe_labels") == 1 + 3 and calls.count("nonkeyframe_labels") == 3  # feature + (warm-up + 2)


def test_text_report_states_the_convention_and_the_ratio(capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "--no-timing", "--scale", "0.5", "0.7"]) == 0
    out = capsys.readouterr().out
    assert "FLOPs = 2 x MACs" in out and "CReFF attention analytic" in out
    assert "paper at 720x960, 0.5x: HR 60.2 G, LR 15.2 G (thop MACs); mIoU HR 71.57, LR 66.55, AR 70.37" in out
    assert "AR^0.5 vs 1.0x: 3.08x fewer MACs, speed not measured" in out
    assert "AR^0.7 vs 1.0x:" in out


def test_latency_statistics() -> None:
    stats = LatencyStats((4.0, 1.0, 10.0, 2.0, 3.0), warmup=1)
    assert stats.median_s == 3.0 and stats.min_s == 1.0
    assert stats.p90_s == pytest.approx(7.6)  # sorted 1,2,3,4,10: 90% lies 0.6 of the way from 4 to 10


def test_interleaved_warms_up_then_takes_turns() -> None:
    order: list[str] = []
    stats = interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=3, warmup=2)
    assert order == ["a", "b"] * 5
    assert len(stats["a"].runs_s) == 3 and stats["b"].warmup == 2


def test_video_stages_are_timed_per_frame(
    tmp_path: Path, capsys: pytest.CaptureFixture, two_torch_threads: None
) -> None:
    clip = write_small_clip(tmp_path / "clip.mp4", frames=6)
    threads = torch.get_num_threads()
    report = _bench_json(capsys, "--size", "48x64", "--repeats", "1", "--warmup", "1", "-L", "2", "--input", str(clip), "--frames", "4", "--threads", "1")
    assert report["machine"]["torch_threads"] == 1 and torch.get_num_threads() == threads  # restored
    video = report["archs"][0]["video"]
    assert video["frames_timed"] == 4 and video["size"] == [96, 128] and video["keyframe_interval"] == 2
    stages = video["stages"]
    assert set(stages) == {"decode", "motion", "model_keyframe", "model_nonkeyframe", "write"}
    assert stages["decode"]["repeats"] == stages["write"]["repeats"] == 4
    assert stages["model_keyframe"]["repeats"] == stages["model_nonkeyframe"]["repeats"] == 2
    assert not list(tmp_path.glob("arseg-bench-*"))


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--scale", "1.5"], 2, "--scale must be in (0, 1], got 1.5"),
        (["--arch", "camvid-resnet50"], 2, "unknown architecture 'camvid-resnet50'"),
        (["--backend", "onnxruntime"], 2, "needs --onnx DIR"),
        (["--input", "missing.mp4"], 1, "missing.mp4: no such file"),
        (["--size", "16x16"], 2, "at least 32x32"),
    ],
)
def test_bad_options_are_one_line(args: list[str], code: int, message: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "--no-timing", *args]) == code
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0


def test_given_weights_decide_the_architecture(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from _onnx_fixtures import random_model
    from arseg_cli.model import save_weights

    weights = save_weights(random_model("cityscapes-bise18"), tmp_path / "city.safetensors")
    report = _bench_json(capsys, "--weights", str(weights), "--no-timing", "--size", "64x128")
    (result,) = report["archs"]
    assert result["arch"] == "cityscapes-bise18" and result["weights"] == str(weights)
    assert result["scales"][1]["macs"]["hr"] == branch_costs("cityscapes-bise18", 64, 128, 0.5).hr.macs
    assert main(["bench", "--no-timing", "--weights", str(weights), "--backend", "onnxruntime", "--onnx", str(tmp_path)]) == 2
    assert "--weights is for the torch backend" in capsys.readouterr().err
