"""ONNX export and the onnxruntime backend: `arseg export-onnx` end to end on random camvid-bise18 weights
(one export, shared, run as a real process beside the tests before these), metadata, parity with PyTorch
on decoded frames at two sizes, the segment pipeline on the exported graphs, bad input. Every architecture's parity: slow tests (`make test-all`)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
import onnx  # noqa: E402

from _onnx_fixtures import BackgroundExport, random_model, write_small_clip  # noqa: E402
from arseg_cli.cli import main  # noqa: E402
from arseg_cli.errors import OutputExistsError, WeightsError  # noqa: E402
from arseg_cli.model import list_archs, save_weights  # noqa: E402
from arseg_cli.model.protocol import ModelBackend  # noqa: E402
from arseg_cli.onnx import OnnxARSeg, OnnxExtraMissingError, ParityReport, check_parity, export_onnx, parity_inputs  # noqa: E402
from arseg_cli.onnx import _extra  # noqa: E402
from arseg_cli.onnx.graphs import IntegralAvgPool2d  # noqa: E402
from arseg_cli.palettes import CAMVID  # noqa: E402
from arseg_cli.pipeline import OutputTargets, Settings, segment_frames, segment_video  # noqa: E402
from arseg_cli.video.decode import decode_frames  # noqa: E402

SIZES = [(96, 128), (120, 160)]  # 120 and 160 are not multiples of 32
# One export takes 1-2 minutes on a busy 2-core CPU: it runs in the background from the session's start
# (conftest.py); the first test here waits for whatever is left of it.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def exported(onnx_export_in_background: BackgroundExport) -> dict:
    """`arseg export-onnx` of random camvid-bise18 weights, checked on a tiny clip: the conftest's
    background run (a real process, started when the session began)."""
    run = onnx_export_in_background
    return {"root": run.root, "model": run.model, "weights": run.weights, "clip": run.clip, "dir": run.dir,
            "argv": run.argv, "run": run}  # fmt: skip


@pytest.fixture(scope="module")
def export_run(exported: dict) -> dict:
    return exported["run"].result()


def test_export_cli_writes_both_graphs_and_checks_them_on_real_frames(exported: dict, export_run: dict) -> None:
    assert export_run["code"] == 0, export_run["stderr"][-2000:]
    summary = json.loads(export_run["stdout"])
    assert summary["arch"] == "camvid-bise18" and summary["opset"] == 18
    assert sorted(summary["files"]) == ["keyframe", "nonkeyframe"]
    assert all(Path(p).is_file() for p in summary["files"].values())
    check = summary["check"]
    assert check["ok"] and check["frames"] == 4 and check["size"] == [96, 128]
    assert check["keyframe_max_abs_diff"] <= 1e-4 and check["nonkeyframe_max_abs_diff"] <= 1e-4
    assert 0 < check["float32_noise"] < 1e-5 and check["bound"] == 1e-4  # random weights: float32 noise is tiny
    assert check["label_agreement"] >= 0.999


def test_graphs_carry_the_model_metadata(exported: dict, export_run: dict) -> None:
    model = exported["model"]
    for graph in ("keyframe", "nonkeyframe"):
        proto = onnx.load(str(exported["dir"] / f"{graph}.onnx"), load_external_data=False)
        props = {p.key: p.value for p in proto.metadata_props}
        assert props["arseg.graph"] == graph
        assert json.loads(props["arseg.classes"]) == list(model.meta.classes)
        assert json.loads(props["arseg.palette"]) == [list(c) for c in model.meta.palette]
        assert json.loads(props["arseg.mean"]) == pytest.approx(model.meta.mean)
        assert json.loads(props["arseg.std"]) == pytest.approx(model.meta.std)
        assert float(props["arseg.scale"]) == 0.5 and props["arseg.keyframe_interval"] == "4"
        assert props["arseg.warp"] == model.meta.warp
        assert proto.opset_import[0].version >= 17
    runtime = OnnxARSeg(exported["dir"])
    assert runtime.meta == model.meta and runtime.num_classes == 12 and runtime.scale == 0.5


def test_graphs_have_dynamic_height_and_width(exported: dict, export_run: dict) -> None:
    session = OnnxARSeg(exported["dir"])._sessions["nonkeyframe"]
    for tensor in session.get_inputs():
        assert tensor.shape[0] == 1 and isinstance(tensor.shape[2], str) and isinstance(tensor.shape[3], str)


@pytest.mark.parametrize("size_hw", SIZES)
def test_onnxruntime_matches_pytorch_within_1e4(exported: dict, export_run: dict, size_hw: tuple[int, int]) -> None:
    inputs = parity_inputs(exported["clip"], frames=3, size_hw=size_hw)
    assert np.abs(inputs[2].flow_px).max() > 1.0  # the clip pans: the flows are not zero
    report = check_parity(exported["model"], OnnxARSeg(exported["dir"]), inputs)
    assert report.size_hw == size_hw
    assert report.ok, report.to_json()
    assert report.nonkeyframe_max_abs is not None


def test_nonkeyframe_graph_is_creffs_plain_path(exported: dict, export_run: dict) -> None:
    proto = onnx.load(str(exported["dir"] / "nonkeyframe.onnx"))
    ops = {node.op_type for node in proto.graph.node}
    assert {"GridSample", "Softmax", "Conv"} <= ops


def test_segment_pipeline_runs_on_the_exported_graphs(exported: dict, export_run: dict, tmp_path: Path) -> None:
    runtime = OnnxARSeg(exported["dir"])
    settings = Settings(scale=0.5, keyframe_interval=4)
    ours = list(segment_frames(decode_frames(exported["clip"]), runtime, settings))  # type: ignore[arg-type]
    theirs = list(segment_frames(decode_frames(exported["clip"]), exported["model"], settings))
    assert [f.kind for f in ours] == [f.kind for f in theirs] and len(ours) == 6
    agree = np.mean([np.mean(a.labels == b.labels) for a, b in zip(ours, theirs)])
    assert agree >= 0.999
    targets = OutputTargets(png_dir=str(tmp_path / "masks"))
    summary = segment_video(exported["clip"], runtime, targets, settings, palette=CAMVID)  # type: ignore[arg-type]
    assert summary.frames == 6 and len(list((tmp_path / "masks").glob("*.png"))) == 6
    assert summary.to_json(runtime)["arch"] == "camvid-bise18"  # type: ignore[arg-type]


def _protocol_signatures(backend: object) -> dict[str, object]:
    """Each ModelBackend member of `backend`: a method's parameter names and kinds, or 'attribute'."""
    out: dict[str, object] = {}
    for name in (n for n in vars(ModelBackend) if not n.startswith("_")):
        member = inspect.getattr_static(backend, name)
        if isinstance(member, property) or not callable(member):
            out[name] = "attribute"
        else:
            out[name] = [(p.name, p.kind) for p in inspect.signature(member).parameters.values()]
    return out


def test_both_backends_implement_the_model_protocol_and_run_one_pipeline(exported: dict, export_run: dict) -> None:
    """ARSeg and OnnxARSeg are both ModelBackends, member for member; the pipeline, which calls only the
    protocol, runs grouped and frame by frame on either with the same decisions."""
    runtime, model = OnnxARSeg(exported["dir"]), exported["model"]
    expected = _protocol_signatures(ModelBackend)
    for backend in (model, runtime):
        assert isinstance(backend, ModelBackend)
        assert _protocol_signatures(backend) == expected
        assert backend.has_lr and backend.dtype == torch.float32 and backend.device == torch.device("cpu")
    assert not isinstance(object(), ModelBackend)
    assert (model.max_batch, runtime.max_batch) == (None, 1)
    runs = {(name, low_latency): list(segment_frames(decode_frames(exported["clip"]), backend,
                                                     Settings(scale=0.5, keyframe_interval=4, low_latency=low_latency)))
            for name, backend in (("torch", model), ("ort", runtime)) for low_latency in (False, True)}  # fmt: skip
    reference = runs["torch", False]
    for results in runs.values():
        assert [(f.index, f.kind, f.distance) for f in results] == [(f.index, f.kind, f.distance) for f in reference]
        assert np.mean([np.mean(a.labels == b.labels) for a, b in zip(results, reference)]) >= 0.999
    for a, b in zip(runs["ort", False], runs["ort", True]):  # batch 1 either way: the same calls
        np.testing.assert_array_equal(a.labels, b.labels)


def test_segment_cli_backend_onnxruntime_writes_the_labels_of_the_torch_backend(exported: dict, export_run: dict, tmp_path: Path) -> None:
    common = ["segment", str(exported["clip"]), "-L", "4", "--device", "cpu", "--quiet", "--json"]
    assert main([*common, "-o", str(tmp_path / "torch"), "-w", str(exported["weights"])]) == 0
    assert main([*common, "-o", str(tmp_path / "ort"), "--backend", "onnxruntime", "--onnx", str(exported["dir"])]) == 0
    from PIL import Image

    ours, theirs = sorted((tmp_path / "ort").glob("*.png")), sorted((tmp_path / "torch").glob("*.png"))
    assert [p.name for p in ours] == [p.name for p in theirs] and len(ours) == 6
    agree = np.mean([np.mean(np.asarray(Image.open(a)) == np.asarray(Image.open(b))) for a, b in zip(ours, theirs)])
    assert agree >= 0.999  # float32 reordering only flips near-ties (parity of the scores: 1e-4)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--backend", "onnxruntime"], "--backend onnxruntime needs --onnx"),
        (["--backend", "onnxruntime", "--onnx", "g", "-w", "x.safetensors"], "drop --weights/--arch"),
        (["--onnx", "g"], "--onnx is for --backend onnxruntime"),
    ],
)
def test_segment_cli_backend_options_are_checked_first(args: list[str], words: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["segment", "clip.mp4", "-o", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and words in err
    assert not (tmp_path / "out").exists()


def test_existing_graphs_are_kept_without_force(exported: dict, export_run: dict) -> None:
    before = (exported["dir"] / "keyframe.onnx").stat().st_mtime_ns
    with pytest.raises(OutputExistsError, match="already exists"):
        export_onnx(exported["model"], exported["dir"])
    assert (exported["dir"] / "keyframe.onnx").stat().st_mtime_ns == before


def test_bench_times_the_onnxruntime_backend(exported: dict, export_run: dict, capsys: pytest.CaptureFixture) -> None:
    code = main(["bench", "--backend", "onnxruntime", "--onnx", str(exported["dir"]), "--size", "64x96", "--repeats", "1", "--warmup", "0", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == "onnxruntime"
    row = next(r for r in report["archs"][0]["scales"] if r["scale"] == 0.5)
    assert set(row["latency"]) == {"hr", "nonkeyframe", "ar_average_s"}  # no separate LR / CReFF graph


def test_a_directory_without_graphs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no keyframe.onnx"):
        OnnxARSeg(tmp_path)


def test_missing_extra_is_one_line_with_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    real = _extra.importlib.import_module

    def without_onnxscript(name: str) -> object:
        if name == "onnxscript":
            raise ImportError(name)
        return real(name)

    monkeypatch.setattr(_extra.importlib, "import_module", without_onnxscript)
    with pytest.raises(OnnxExtraMissingError, match=r"onnxscript not installed\): pip install 'arseg\[onnx\]'"):
        _extra.require()
    assert main(["export-onnx", "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'arseg[onnx]'" in err
    assert not (tmp_path / "out").exists()


def test_parity_report_fails_above_its_tolerance() -> None:
    report = ParityReport(4, (96, 128), 2e-5, 1.5e-4, 0.9999)
    assert report.max_abs == 1.5e-4 and report.bound == 1e-4 and not report.ok
    assert ParityReport(4, (96, 128), 2e-5, 9e-5, 1.0).ok
    # where PyTorch's own float32 error is larger, twice it bounds what another float32 runtime may differ
    noisy = ParityReport(4, (96, 128), 2e-5, 1.5e-4, 1.0, float32_noise=8e-5)
    assert noisy.bound == 1.6e-4 and noisy.ok and not ParityReport(4, (96, 128), 2e-5, 1.7e-4, 1.0, float32_noise=8e-5).ok


@pytest.mark.parametrize("size_hw", [(13, 17), (12, 16), (45, 60), (5, 7)])
@pytest.mark.parametrize("bins", [2, 3, 6])
def test_integral_pooling_equals_adaptive_average_pooling(size_hw: tuple[int, int], bins: int) -> None:
    x = 10 * torch.rand(2, 3, *size_hw, generator=torch.Generator().manual_seed(1))
    expected = torch.nn.AdaptiveAvgPool2d(bins)(x)
    # float32 averaging in torch's own kernel: ~1 ulp of values up to 10
    torch.testing.assert_close(IntegralAvgPool2d((bins, bins))(x), expected, rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("arch", list_archs())
def test_every_architecture_exports_and_matches_pytorch_at_two_sizes(arch: str, tmp_path: Path) -> None:
    model = random_model(arch)
    export_onnx(model, tmp_path / "graphs")
    runtime = OnnxARSeg(tmp_path / "graphs")
    clip = write_small_clip(tmp_path / "clip.mp4", frames=3)
    for size_hw in SIZES:
        report = check_parity(model, runtime, parity_inputs(clip, frames=3, size_hw=size_hw))
        assert report.ok, (arch, report.to_json())


@pytest.mark.slow
def test_hr_only_weights_export_the_keyframe_graph_alone(tmp_path: Path) -> None:
    model = random_model("camvid-bise18", scale=None)
    written = export_onnx(model, tmp_path / "graphs")
    assert written.nonkeyframe is None and [p.name for p in tmp_path.joinpath("graphs").iterdir()] == ["keyframe.onnx"]
    runtime = OnnxARSeg(tmp_path / "graphs")
    assert not runtime.has_lr and runtime.scale is None
    clip = write_small_clip(tmp_path / "clip.mp4", frames=1)
    report = check_parity(model, runtime, parity_inputs(clip, frames=1))
    assert report.ok and report.nonkeyframe_max_abs is None


def test_export_cli_fails_in_one_line_above_the_tolerance(exported: dict, export_run: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import dataclasses
    import functools

    import arseg_cli.onnx as package
    from arseg_cli.onnx import ExportedGraphs

    graphs = exported["dir"]
    # The export itself is the fixture's (a minute); the check is real, with a bound below float32 noise.
    monkeypatch.setattr(package, "export_onnx", lambda *a, **k: ExportedGraphs(graphs, graphs / "keyframe.onnx", graphs / "nonkeyframe.onnx", 18))
    strict = functools.partial(check_parity, tolerance=1e-12)
    monkeypatch.setattr(package, "check_parity", lambda *a, **k: dataclasses.replace(strict(*a, **k), float32_noise=0.0))
    argv = [a for a in exported["argv"] if a != "--json"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: onnxruntime vs PyTorch on 4 frames of clip.mp4 at 96x128: max |diff| keyframe")
    assert err[-1].endswith("onnxruntime differs from PyTorch by more than 1e-12")


def test_the_synthetic_check_clip_moves(tmp_path: Path) -> None:
    from arseg_cli.onnx.check import synthetic_check_clip

    inputs = parity_inputs(synthetic_check_clip(tmp_path / "clip.mp4", frames=3), frames=3)
    assert len(inputs) == 3 and inputs[0].rgb.shape == (360, 480, 3)
    assert not inputs[0].flow_px.any() and np.median(np.abs(inputs[2].flow_px[0])) >= 2  # pans 3 px a frame


def test_export_cli_checks_on_a_synthetic_clip_without_samples(exported: dict, export_run: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import arseg_cli.onnx as package
    from arseg_cli.cli import export_onnx as command
    from arseg_cli.onnx import ExportedGraphs

    graphs = exported["dir"]
    monkeypatch.setattr(package, "export_onnx", lambda *a, **k: ExportedGraphs(graphs, graphs / "keyframe.onnx", graphs / "nonkeyframe.onnx", 18))
    monkeypatch.setattr(command, "SAMPLE", tmp_path / "no-samples" / "sample.mp4")
    assert main(["export-onnx", "-w", str(exported["weights"]), "-o", str(graphs), "--size", "96x128", "--check-frames", "3"]) == 0
    err = capsys.readouterr().err
    assert "on 3 frames of a synthetic clip at 96x128" in err and err.rstrip().endswith(": ok")
