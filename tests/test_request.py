"""SegmentRequest and run(): the option rules in library words, run() from Python equal to the CLI, the
choice enums equal to the CLI's choices, s and L checked in one place, and library errors free of flags."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _segment_fixtures import HEIGHT, WIDTH, tiny_model, write_test_clip
from _segment_fixtures import one_torch_thread, weights  # noqa: F401  (fixtures)
from arseg_cli import Backend, Device, KeyframePolicy, MotionMethod, OnError, SegmentRequest, run
from arseg_cli.cli import app, main
from arseg_cli.cli._flags import in_flag_words
from arseg_cli.errors import InputError, OptionsError, OutOfRangeError
from arseg_cli.pipeline import Settings
from arseg_cli.scale_interval import PER_FRAME_HR, ScaleInterval, check_keyframe_interval, check_scale, resolve_scale_interval

FRAMES = 6
LIBRARY = Path(__file__).resolve().parent.parent / "arseg_cli"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_clip(tmp_path_factory.mktemp("clip") / "street.mp4", FRAMES)


# --- the rules of a request ------------------------------------------------------------------------

RULES = [
    (dict(inputs=[]), OptionsError, "no input"),
    (dict(scale=0.0), OutOfRangeError, r"scale s must be in \(0, 1\], got 0.0"),
    (dict(scale=1.5), OutOfRangeError, r"scale s must be in \(0, 1\], got 1.5"),
    (dict(keyframe_interval=0), OutOfRangeError, "keyframe interval L must be >= 1, got 0"),
    (dict(opacity=1.5), OutOfRangeError, r"`opacity` must be in \[0, 1\]"),
    (dict(start=-1), OutOfRangeError, "`start` must be >= 0"),
    (dict(end=0), OutOfRangeError, "`end` must be >= 1"),
    (dict(start=5, end=3), OptionsError, r"`end` \(3\) must be greater than `start` \(5\)"),
    (dict(max_pixels=-1), OutOfRangeError, "`max_pixels` must be >= 0"),
    (dict(policy="sometimes"), OptionsError, "unknown keyframe policy 'sometimes': use one of fixed, iframe, adaptive"),
    (dict(device="tpu"), OptionsError, "unknown device 'tpu'"),
    (dict(backend="tensorrt"), OptionsError, "unknown backend 'tensorrt'"),
    (dict(on_error="ignore"), OptionsError, "unknown error policy 'ignore'"),
    (dict(resume=True, output=None, video="v.mp4"), OptionsError, "`resume` continues from the label PNGs"),
    (dict(resume=True, output="-"), OptionsError, "`resume` continues from the label PNGs"),
    (dict(resume=True, inputs=["-"]), OptionsError, "`resume` needs the input as a file"),
    (dict(onnx="graphs"), OptionsError, "`onnx` is for `backend` onnxruntime"),
    (dict(backend="onnxruntime"), OptionsError, "`backend` onnxruntime needs `onnx`"),
    (dict(backend="onnxruntime", onnx="g", weights=["w.safetensors"]), OptionsError, "drop `weights`/`arch`"),
    (dict(backend="onnxruntime", onnx="g", half=True), OptionsError, "`half` is for the torch backend"),
    (dict(backend="onnxruntime", onnx="g", compile_attention=True), OptionsError, "`compile_attention` is for the torch backend"),
    (dict(shard="1/2", output="-"), OptionsError, "`ray` and `shard` write each input's outputs under `output`"),
    (dict(shard="1/2", inputs=["-"]), OptionsError, "`ray` and `shard` read input files"),
    (dict(shard="1/2", backend="onnxruntime", onnx="g"), OptionsError, "`ray` and `shard` run `backend` torch"),
    (dict(ray="local", compile_attention=True), OptionsError, "`compile_attention` is for one process"),
    (dict(shard="1/2", gpus_per_worker=1.0), OptionsError, "`gpus_per_worker` is for `ray` runs"),
    (dict(shard="3/2"), OptionsError, "`shard` '3/2': K must be between 1 and N"),
    (dict(shard="half"), OptionsError, "`shard` 'half': give K/N"),
]


@pytest.mark.parametrize(("changes", "error", "words"), RULES, ids=[next(iter(c)) + str(i) for i, (c, _, _) in enumerate(RULES)])
def test_a_request_that_breaks_a_rule_raises_in_library_words(changes: dict, error: type, words: str) -> None:
    fields = {"inputs": ["clip.mp4"], "output": "out"} | changes
    inputs = fields.pop("inputs")
    with pytest.raises(error, match=words) as raised:
        SegmentRequest(inputs, **fields)
    assert not re.search(r"(^|\s)--?[a-zA-Z]", str(raised.value)), f"a CLI flag in a library error: {raised.value}"


def test_a_request_takes_choices_as_enums_or_their_values_and_inputs_as_any_sequence() -> None:
    request = SegmentRequest("clip.mp4", output="out", policy="fixed", device="cpu", backend=Backend.TORCH)
    assert request.inputs == ("clip.mp4",) and request.weights == ()
    assert request.policy is KeyframePolicy.FIXED and request.device is Device.CPU and request.on_error is OnError.CONTINUE
    settings = request.settings()
    assert (settings.scale, settings.keyframe_interval, settings.policy) == (None, None, KeyframePolicy.FIXED)
    assert not request.scaleout and SegmentRequest(["a.mp4"], output="o", shard="1/3").chosen_shard().count == 3


# --- run() from Python against the CLI ---------------------------------------------------------------


def _pngs(directory: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(directory.glob("*.png"))])


def test_run_from_python_writes_what_the_cli_writes(
    weights: Path, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = SegmentRequest([str(clip)], output=str(tmp_path / "py"), weights=[str(weights)], device="cpu",
                             keyframe_interval=3, video=str(tmp_path / "py.mp4"))  # fmt: skip
    seen: list[str] = []
    report = run(request, on_result=lambda result: seen.append(result.outcome))
    assert report.ok and report.exit_code == 0 and seen == ["done"]
    summary = report.results[0].summary
    assert summary is not None and (summary.frames, summary.keyframe_interval, summary.scale) == (FRAMES, 3, 0.5)

    assert main(["segment", str(clip), "-o", str(tmp_path / "cli"), "-w", str(weights), "--device", "cpu", "-L", "3",
                 "--video", str(tmp_path / "cli.mp4"), "--json", "-q"]) == 0  # fmt: skip
    printed = json.loads(capsys.readouterr().out)[0]
    np.testing.assert_array_equal(_pngs(tmp_path / "py"), _pngs(tmp_path / "cli"))
    assert _pngs(tmp_path / "py").shape == (FRAMES, HEIGHT, WIDTH)
    assert (tmp_path / "py.mp4").stat().st_size > 0
    ours = summary.to_json(report.model) | {"weights": report.weights}
    for key in ("frames", "keyframes", "keyframe_reasons", "scale", "keyframe_interval", "policy", "macs_per_frame", "weights"):
        assert ours[key] == printed[key], key


def test_the_error_policy_continues_or_stops_and_sets_the_exit_code(weights: Path, clip: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    common = dict(weights=[str(weights)], device="cpu", keyframe_interval=1)
    report = run(SegmentRequest([str(junk), str(clip)], output=str(tmp_path / "go-on"), **common))
    assert [r.outcome for r in report.results] == ["failed", "done"] and report.exit_code == 1
    assert report.results[0].error is not None and report.results[0].error.count("junk.mp4") == 1
    with pytest.raises(InputError):
        run(SegmentRequest([str(junk), str(clip)], output=str(tmp_path / "stop"), on_error="stop", **common))
    assert not (tmp_path / "stop" / "street").exists()


def test_half_without_cuda_is_refused_before_anything_is_written(weights: Path, clip: Path, tmp_path: Path) -> None:
    with pytest.raises(OptionsError, match="`half` needs CUDA"):
        run(SegmentRequest([str(clip)], output=str(tmp_path / "out"), weights=[str(weights)], device="cpu", half=True))
    assert not (tmp_path / "out").exists()


# --- the enums are the CLI's choices -------------------------------------------------------------------


def _choices(command: str, option: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The values the CLI accepts for `option`, as its usage error for a value it does not accept lists them."""
    before = {"eval": ["x"], "bench": []}.get(command, ["x", "-o", "o"])
    assert main([command, *before, option, "bogus"]) == 2
    listed = " ".join(capsys.readouterr().err.split()).split("is not one of", 1)[1].split(". (see", 1)[0]
    return re.findall(r"'([^']+)'", listed)


@pytest.mark.parametrize(
    ("command", "option", "enum"),
    [
        ("segment", "--keyframe-policy", KeyframePolicy),
        ("segment", "--device", Device),
        ("segment", "--backend", Backend),
        ("eval", "--keyframe-policy", KeyframePolicy),
        ("eval", "--device", Device),
        ("bench", "--backend", Backend),
        ("bench", "--device", Device),
        ("train", "--device", Device),
        ("motion", "--motion", MotionMethod),
    ],
)
def test_the_cli_offers_exactly_the_library_enums_values(
    command: str, option: str, enum: type, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _choices(command, option, capsys) == [member.value for member in enum]


def test_segment_help_lists_the_policies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["segment", "--help"]) == 0
    shown = capsys.readouterr().out
    assert all(policy.value in shown for policy in KeyframePolicy)


# --- s and L in one place ------------------------------------------------------------------------------------


def test_scale_and_interval_are_resolved_from_the_caller_then_the_weights() -> None:
    ar = dict(trained_scale=0.5, trained_interval=12, has_lr=True)
    assert resolve_scale_interval(None, None, **ar) == ScaleInterval(0.5, 12)
    assert resolve_scale_interval(0.25, 4, **ar) == (0.25, 4)
    assert resolve_scale_interval(1.0, None, **ar) == PER_FRAME_HR == (1.0, 1)
    assert resolve_scale_interval(None, 1, **ar).per_frame_hr
    hr_only = dict(trained_scale=None, trained_interval=12, has_lr=False)
    assert resolve_scale_interval(None, None, **hr_only) == PER_FRAME_HR  # no LR scale: s = 1
    assert resolve_scale_interval(0.5, 1, **hr_only) == PER_FRAME_HR
    with pytest.raises(OptionsError, match="no LR branch .* use scale s 1.0 or keyframe interval L 1 .* not scale s 0.5"):
        resolve_scale_interval(0.5, None, **hr_only)


@pytest.mark.parametrize("scale", [0.0, -0.5, 1.0001, float("nan")])
def test_every_place_that_takes_s_refuses_the_same_values_in_the_same_words(scale: float) -> None:
    from arseg_cli.frame_step import FrameStep
    from arseg_cli.model.resize import lr_size
    from arseg_cli.train.config import TrainConfig

    words = r"scale s must be in \(0, 1\]"
    for check in (lambda: check_scale(scale), lambda: Settings(scale=scale), lambda: lr_size(64, 96, scale),
                  lambda: FrameStep(tiny_model(), scale)):  # fmt: skip
        with pytest.raises(OutOfRangeError, match=words):
            check()
    with pytest.raises(OptionsError, match=words):
        TrainConfig(phase="ar", arch="camvid-bise18", steps=1, batch=2, lr=0.01, optimizer="adam", scale=scale)


@pytest.mark.parametrize("interval", [0, -3])
def test_every_place_that_takes_l_refuses_the_same_values_in_the_same_words(interval: int) -> None:
    from arseg_cli.model.flops import ar_average_macs
    from arseg_cli.schedule import Scheduler
    from arseg_cli.video.flowio import MotionExport
    from arseg_cli.video.motion import flows_to_key
    from arseg_cli.video.transcode import EncodeSettings

    words = "keyframe interval L must be >= 1"
    for check in (lambda: check_keyframe_interval(interval), lambda: Settings(keyframe_interval=interval),
                  lambda: Scheduler("fixed", interval), lambda: ar_average_macs(1.0, 1.0, interval),
                  lambda: MotionExport(keyframe_interval=interval), lambda: list(flows_to_key([], interval)),
                  lambda: EncodeSettings(keyint=interval)):  # fmt: skip
        with pytest.raises(OutOfRangeError, match=words):
            check()


# --- library words, CLI flags --------------------------------------------------------------------------------


def _error_texts(tree: ast.AST) -> list[tuple[int, str]]:
    """The literal text of every exception raised or built (`...Error(...)`) in a module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")).endswith("Error"):
            for arg in node.args:
                parts = [arg] if isinstance(arg, ast.Constant) else getattr(arg, "values", [])
                text = "".join(str(p.value) for p in parts if isinstance(p, ast.Constant) and isinstance(p.value, str))
                found.append((node.lineno, text))
    return found


def test_library_errors_name_no_cli_flags() -> None:
    flagged = []
    for path in sorted(LIBRARY.rglob("*.py")):
        if "cli" in path.relative_to(LIBRARY).parts[:1]:
            continue
        for line, text in _error_texts(ast.parse(path.read_text(encoding="utf-8"))):
            if re.search(r"(^|[\s(/])--?[a-zA-Z]", re.sub(r"`[^`]*`", "", text)):  # a quoted command line may
                flagged.append(f"{path.relative_to(LIBRARY)}:{line}: {text}")
    assert flagged == [], "\n".join(flagged)


def test_the_cli_shows_the_flags_of_the_command_for_library_names() -> None:
    import typer.main

    group = typer.main.get_command(app)
    segment, motion = group.commands["segment"], group.commands["motion"]  # type: ignore[attr-defined]
    assert in_flag_words("scale s must be in (0, 1], got 2", segment) == "--scale must be in (0, 1], got 2"
    assert in_flag_words("keyframe interval L must be >= 1, got 0", motion) == "--to-key must be >= 1, got 0"
    assert (in_flag_words("`resume` needs `output`; see `arseg export-onnx`", segment)
            == "--resume needs --output; see `arseg export-onnx`")  # fmt: skip
    assert in_flag_words("`lr_model` has 3 classes", group.commands["eval"]) == "--lr-weights has 3 classes"  # type: ignore[attr-defined]
    assert in_flag_words("`resume` is unknown here", motion) == "`resume` is unknown here"


def test_a_library_error_reaches_the_user_in_flag_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["segment", str(tmp_path / "a.mp4"), "--resume", "--video", str(tmp_path / "v.mp4")]) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "error: --resume continues from the label PNGs of the stopped run: give their directory as --output" in message
