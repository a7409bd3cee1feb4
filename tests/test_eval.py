"""The evaluation protocol on a tiny SynthStreet set with small random bise18 models, and `arseg eval`:
JSON shape, per-d entries, ar == hr at d = 0, an oracle scores 1.0, a constant model scores what the
labels say, one-line errors."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from arseg_cli.cli import app
from arseg_cli.data import PairCache, make_pair, open_dataset
from arseg_cli.data.records import Dataset
from arseg_cli.errors import InputError, OptionsError
from arseg_cli.evaluate import class_rule, evaluate
from arseg_cli.evaluate.protocol import available_modes, eligible_frames
from arseg_cli.model import build_arseg, save_weights
from arseg_cli.model.arseg import ARSeg
from arseg_cli.model.architecture import CAMVID_MEAN, CAMVID_STD
from arseg_cli.model.meta import ModelMeta
from arseg_cli.palettes import CAMVID
from arseg_cli.synth import SynthSpec, write_dataset

# One clip of 14 frames; with L = 3 the frames 2..13 have a keyframe at every distance 0..2.
SPEC = SynthSpec(clips=1, frames=14, height=64, width=96, seed=3, keyint=4, crf=20, preset="ultrafast")
L = 3
LIMIT = 3


def _meta(scale: float | None = 0.5, *, creff: bool = True) -> ModelMeta:
    return ModelMeta("camvid-bise18", CAMVID.classes, CAMVID.colors, CAMVID_MEAN, CAMVID_STD, scale=scale,
                     keyframe_interval=L, has_creff=creff)  # fmt: skip


def _model(scale: float | None = 0.5, *, creff: bool = True, has_hr: bool = True) -> ARSeg:
    torch.manual_seed(0)
    return build_arseg(_meta(scale, creff=creff), has_hr=has_hr).eval()


@pytest.fixture(scope="module", autouse=True)
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The SynthStreet set; the module's tests run torch on one thread (2 shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, SPEC)
    yield root
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dataset(data: Path) -> Dataset:
    return open_dataset(data, split="all")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> PairCache:
    return PairCache(tmp_path_factory.mktemp("pairs"))


@pytest.fixture(scope="module")
def ar_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_weights(_model(), tmp_path_factory.mktemp("w") / "ar.safetensors", dtype=torch.float16)


def test_protocol_counts_every_labelled_pixel_of_each_frame_at_each_distance(dataset: Dataset, pairs: PairCache) -> None:
    result = evaluate(_model(), dataset, keyframe_interval=L, limit=LIMIT, pairs=pairs.get)
    frames = eligible_frames(dataset, L, LIMIT)
    assert [f.index for f in frames] == [2, 3, 4] and result.frames == LIMIT
    labelled = sum(int((dataset.read_labels(f) != 255).sum()) for f in frames)
    assert set(result.modes) == {"hr", "lr", "ar"} and result.lr_kind == "hr-downscaled"
    for mode in result.modes.values():
        assert len(mode.per_d) == L
        assert all(int(m.matrix.sum()) == labelled for m in mode.per_d)
    hr, ar = result.modes["hr"].per_d, result.modes["ar"].per_d
    assert (ar[0].matrix == hr[0].matrix).all()  # d = 0: AR is the HR network alone
    assert any((ar[d].matrix != hr[d].matrix).any() for d in range(1, L))  # later: the LR branch with CReFF


def test_batching_and_pair_threads_change_nothing(dataset: Dataset, pairs: PairCache) -> None:
    model = _model()
    one = evaluate(model, dataset, keyframe_interval=2, limit=LIMIT, batch=1, workers=0, pairs=pairs.get)
    three = evaluate(model, dataset, keyframe_interval=2, limit=LIMIT, batch=3, workers=2, pairs=make_pair)
    for mode in one.modes:
        for a, b in zip(one.modes[mode].per_d, three.modes[mode].per_d, strict=True):
            # Same pixels counted; predictions may only flip where the batch size changes float rounding
            # of a near tie (kernels may block by batch): at most 0.1 % of pixels (here: none).
            assert a.matrix.sum() == b.matrix.sum()
            assert np.abs(a.matrix - b.matrix).sum() / 2 <= 1e-3 * a.matrix.sum()


def _label_logits(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """(N, K, H, W) scores whose argmax is `labels` (N, H, W) (255 -> class 0)."""
    ids = torch.from_numpy(np.where(labels == 255, 0, labels).astype(np.int64))
    return torch.nn.functional.one_hot(ids, num_classes).permute(0, 3, 1, 2).float()


class _Answers:
    """A pair maker that remembers the labels of the pairs it made, for models that answer from them
    (pairs made inline, workers=0, so that the last pairs made are the batch the model runs on)."""

    def __init__(self, pairs: PairCache) -> None:
        self.pairs = pairs
        self.labels: list[np.ndarray] = []

    def __call__(self, dataset: Dataset, frame, distance: int):  # type: ignore[no-untyped-def]
        pair = self.pairs.get(dataset, frame, distance)
        self.labels.append(pair.labels)
        return pair

    def last(self, count: int) -> np.ndarray:
        """(count, H, W) the labels of the last `count` pairs (the batch the model is running on)."""
        return np.stack(self.labels[-count:])


def _answering_model(monkeypatch: pytest.MonkeyPatch, answer) -> ARSeg:  # type: ignore[no-untyped-def]
    """A real AR model whose every call returns full-size logits `answer(batch size)` (no network run)."""
    model = _model()
    feat = torch.zeros(1, 1, 1, 1)
    monkeypatch.setattr(model, "keyframe", lambda x: (answer(x.shape[0]), feat))
    monkeypatch.setattr(model, "lowres", lambda x, size: answer(x.shape[0]))
    monkeypatch.setattr(model, "nonkeyframe", lambda x, f, flow: answer(x.shape[0]))
    return model


def test_an_oracle_scores_one_in_every_mode_and_distance(
    dataset: Dataset, pairs: PairCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = _Answers(pairs)
    model = _answering_model(monkeypatch, lambda n: _label_logits(answers.last(n), 12))
    for count in (12, 11):
        rule = class_rule(CAMVID.classes, count)
        result = evaluate(model, dataset, keyframe_interval=L, limit=LIMIT, batch=2, workers=0, pairs=answers, rule=rule)
        for mode in result.modes.values():
            assert mode.miou_per_d(result.rule) == [1.0] * L and mode.miou(result.rule) == 1.0


def test_a_constant_model_scores_what_the_labels_say(
    dataset: Dataset, pairs: PairCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = _Answers(pairs)
    model = _answering_model(monkeypatch, lambda n: _label_logits(np.full_like(answers.last(n), 3), 12))  # all road
    frames = eligible_frames(dataset, L, LIMIT)
    counts = sum(np.bincount(dataset.read_labels(f).ravel(), minlength=256)[:12] for f in frames)
    present = np.flatnonzero(counts)
    # road's IoU = road pixels / all labelled pixels; every other present class 0; absent classes have none
    expected = counts[3] / counts.sum() / len(present)
    result = evaluate(model, dataset, modes=("hr", "ar"), keyframe_interval=L, limit=LIMIT, workers=0, pairs=answers)
    for mode in result.modes.values():
        assert mode.miou_per_d(result.rule) == pytest.approx([expected] * L, rel=1e-12)
        per_class = mode.iou_per_class(result.rule)
        assert {c for c, v in per_class.items() if not math.isnan(v)} == set(present.tolist())


def test_hr_only_weights_evaluate_lr_as_the_hr_network_on_downscaled_frames(dataset: Dataset, pairs: PairCache) -> None:
    model = _model(scale=None)
    assert available_modes(model) == ("hr", "lr")
    result = evaluate(model, dataset, modes=("hr", "lr"), scale=0.5, keyframe_interval=2, limit=1, pairs=pairs.get)
    assert result.lr_kind == "hr-downscaled"
    hr, lr = (result.modes[m].per_d[1].matrix for m in ("hr", "lr"))
    assert hr.sum() == lr.sum() and (hr != lr).any()  # the half-size input changes the predictions
    full = evaluate(model, dataset, modes=("hr", "lr"), scale=1.0, keyframe_interval=2, limit=1, pairs=pairs.get)
    assert (full.modes["lr"].per_d[1].matrix == full.modes["hr"].per_d[1].matrix).all()  # s = 1: the same pass


def test_plain_lr_network_is_used_when_the_weights_hold_one(dataset: Dataset, pairs: PairCache) -> None:
    model = _model(creff=False)
    assert available_modes(model) == ("hr", "lr")
    result = evaluate(model, dataset, modes=("lr",), keyframe_interval=2, limit=1, pairs=pairs.get)
    assert result.lr_kind == "lr-network" and len(result.modes["lr"].per_d) == 2
    with pytest.raises(OptionsError, match="no AR branch"):
        evaluate(model, dataset, modes=("ar",), keyframe_interval=2, limit=1, pairs=pairs.get)
    with pytest.raises(OptionsError, match="no HR network"):
        evaluate(_model(creff=False, has_hr=False), dataset, modes=("hr",), keyframe_interval=2, limit=1, pairs=pairs.get)


def test_protocol_refusals(dataset: Dataset, pairs: PairCache) -> None:
    with pytest.raises(InputError, match="no labelled frame has 14 frames before it"):
        evaluate(_model(), dataset, keyframe_interval=15, pairs=pairs.get)
    with pytest.raises(OptionsError, match="unknown mode 'xr'"):
        evaluate(_model(), dataset, modes=("xr",), keyframe_interval=2, pairs=pairs.get)


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_cli_json_on_stdout(data: Path, ar_weights: Path, tmp_path: Path) -> None:
    code, out, err = _run("eval", str(data), "--weights", str(ar_weights), "--split", "all", "-L", str(L),
                          "--limit", "2", "--json", "--device", "cpu", "--cache", str(tmp_path / "c"))  # fmt: skip
    assert code == 0, err
    report = json.loads(out)  # stdout holds the JSON object and nothing else
    assert set(report) >= {"hr", "lr", "ar", "classes", "class_rule", "lr_kind", "data", "weights", "frames"}
    assert report["classes"] == 12 and "Void counted" in report["class_rule"] and report["lr_kind"] == "hr-downscaled"
    assert report["frames"] == 2 and report["weights"] == str(ar_weights) and report["data"] == str(data)
    for mode in ("hr", "lr", "ar"):
        entry = report[mode]
        assert len(entry["per_d"]) == L and list(entry["per_class"]) == list(CAMVID.classes)
        assert entry["miou"] == pytest.approx(np.mean(entry["per_d"]), abs=2e-6)
    assert report["ar"]["per_d"][0] == report["hr"]["per_d"][0]


def test_cli_table_and_classes_11(data: Path, ar_weights: Path) -> None:
    code, out, err = _run("eval", str(data), "--weights", str(ar_weights), "--split", "all", "-L", "2",
                          "--limit", "1", "--modes", "hr,lr", "--classes", "11")  # fmt: skip
    assert code == 0, err
    assert "lr (hr-downscaled)" in out and "Void pixels ignored" in out and "d=1" in out and "ar" not in out.split()
    code, out, err = _run("eval", str(data), "--weights", str(ar_weights), "--split", "all", "-L", "1",
                          "--limit", "1", "--modes", "ar", "--classes", "11", "--json")  # fmt: skip
    report = json.loads(out)
    assert report["classes"] == 11 and list(report["ar"]["per_class"]) == list(CAMVID.classes[:11])
    assert report["lr_kind"] is None and set(report) & {"hr", "lr"} == set()


def _one_error_line(code: int, out: str, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and out == "" and len(lines) == 1 and "Traceback" not in err, (code, out, err)
    return lines[0]


def test_cli_one_line_errors(data: Path, ar_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = _run("eval", str(tmp_path / "nope"), "--weights", str(ar_weights))
    assert "does not exist" in _one_error_line(*missing)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a weights file at all")
    assert str(bad) in _one_error_line(*_run("eval", str(data), "--weights", str(bad), "--split", "all"))
    monkeypatch.delenv("ARSEG_WEIGHTS", raising=False)
    monkeypatch.setattr("arseg_cli.model.defaults.weights_dir", lambda: tmp_path / "weights")
    line = _one_error_line(*_run("eval", str(data), "--split", "all"))
    assert "no default weights" in line and "--weights" in line
    code, out, err = _run("eval", str(data), "--weights", str(ar_weights), "--split", "all", "--modes", "hr,xr")
    assert code == 2 and "unknown mode 'xr'" in err


def test_cli_uses_default_weights_from_the_environment(data: Path, ar_weights: Path) -> None:
    code, out, err = _run("eval", str(data), "--split", "all", "-L", "1", "--limit", "1", "--modes", "hr", "--json",
                          env={"ARSEG_WEIGHTS": str(ar_weights)})  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["weights"] == str(ar_weights) and set(report) & {"lr", "ar"} == set() and len(report["hr"]["per_d"]) == 1


def test_a_model_of_other_classes_is_refused(dataset: Dataset, pairs: PairCache) -> None:
    torch.manual_seed(0)
    meta = ModelMeta("camvid-bise18", tuple(f"c{i}" for i in range(12)), CAMVID.colors, CAMVID_MEAN, CAMVID_STD)
    with pytest.raises(InputError, match="classes are not the model's 12"):
        evaluate(build_arseg(meta).eval(), dataset, modes=("hr",), keyframe_interval=1, pairs=pairs.get)


def test_cli_codec_hevc_needs_the_parser_and_the_pairs_source(data: Path, ar_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("arseg_cli.data.pairs.parser_problem", lambda: "arseg's HEVC motion-vector parser is not built")
    code, out, err = _run("eval", str(data), "--weights", str(ar_weights), "--split", "all", "--codec", "hevc")
    assert code == 2 and out == "" and "--codec hevc" in err and "not built" in err and "Traceback" not in err
    code, out, err = _run("eval", str(data), "--weights", str(ar_weights), "--split", "all", "--source", "stream",
                          "--codec", "hevc")  # fmt: skip
    assert code == 2 and "--codec is for --source pairs" in err


def test_an_attention_logit_factor_multiplies_every_logit() -> None:
    from arseg_cli.evaluate.calibrate import scale_attention_logits
    from arseg_cli.model.creff import window_logits

    model = _model().double()
    creff = model.lr.fuse_attention  # type: ignore[union-attr]
    up, key = torch.randn(1, 256, 6, 8, dtype=torch.float64), torch.randn(1, 256, 6, 8, dtype=torch.float64)
    before = window_logits(creff.lr_query_conv(up), creff.hr_key_conv(key))
    scale_attention_logits(model, 2.5)
    after = window_logits(creff.lr_query_conv(up), creff.hr_key_conv(key))
    torch.testing.assert_close(after, 2.5 * before, rtol=1e-12, atol=1e-12)


def test_calibration_keeps_the_best_factor_and_reports_what_eval_says_of_each(dataset: Dataset, pairs: PairCache) -> None:
    from arseg_cli.evaluate.calibrate import calibrate_attention, scale_attention_logits

    model = _model()
    query = model.lr.fuse_attention.lr_query_conv  # type: ignore[union-attr]
    original = query.weight.detach().clone()
    seen: list[float] = []
    result = calibrate_attention(model, dataset, factors=(4.0, 0.25), limit=2, pairs=pairs.get,
                                 on_factor=lambda factor, miou: seen.append(factor))  # fmt: skip
    assert seen == [0.25, 1.0, 4.0] and set(result.miou_by_factor) == {0.25, 1.0, 4.0}
    for factor, miou in result.miou_by_factor.items():
        fresh = _model()
        scale_attention_logits(fresh, factor)
        expected = evaluate(fresh, dataset, modes=("ar",), scale=0.5, keyframe_interval=L, limit=2, pairs=pairs.get)
        assert miou == expected.modes["ar"].miou(expected.rule)
    best = max(result.miou_by_factor.values())
    assert result.miou_by_factor[result.factor] == best
    assert result.factor == min(f for f, m in result.miou_by_factor.items() if m == best)
    torch.testing.assert_close(query.weight.detach(), original * result.factor, rtol=0, atol=0)


def test_cli_calibrate_writes_new_weights_and_never_overwrites(data: Path, ar_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "calibrated.safetensors"
    args = ("calibrate", str(data), "--weights", str(ar_weights), "--split", "all", "--limit", "1", "--factors", "1,3",
            "--device", "cpu", "--cache", str(tmp_path / "c"))  # fmt: skip
    code, stdout, err = _run(*args, "-o", str(out), "--json")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["factor"] in (1.0, 3.0) and set(report["miou_by_factor"]) == {"1", "3"} and report["output"] == str(out)
    from arseg_cli.model import load_weights

    saved = load_weights(out)
    assert saved.meta.provenance["attention_calibration"]["factor"] == report["factor"]
    original = load_weights(ar_weights).lr.fuse_attention.lr_query_conv.weight  # type: ignore[union-attr]
    calibrated = saved.lr.fuse_attention.lr_query_conv.weight  # type: ignore[union-attr]
    torch.testing.assert_close(calibrated, (original * report["factor"]).half().float(), rtol=0, atol=0)
    written = out.read_bytes()
    assert "exists" in _one_error_line(*_run(*args, "-o", str(out)))
    assert out.read_bytes() == written
    hr_only = save_weights(_model(None, creff=False), tmp_path / "hr.safetensors")
    line = _one_error_line(*_run("calibrate", str(data), "-w", str(hr_only), "-o", str(tmp_path / "x.safetensors"), "--split", "all"))
    assert "no CReFF" in line and not (tmp_path / "x.safetensors").exists()
    code, _, err = _run(*args, "-o", str(tmp_path / "y.safetensors"), "--factors", "2,x")
    assert code == 2 and "--factors" in err and not (tmp_path / "y.safetensors").exists()
