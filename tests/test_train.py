"""Training: losses, the phase objectives, a tiny run whose loss falls, phase ar's freezing, exact resume."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from _train_fixtures import FakePairs, StopTraining, camvid_meta, seeded_model, stop_after, train_config
from arseg_cli.errors import InputError, InputNotFoundError, OptionsError
from arseg_cli.train import TrainConfig, Trainer, recipe_for
from arseg_cli.train.checkpoint import load_checkpoint
from arseg_cli.train.distributed import Processes
from arseg_cli.train.loop import cosine_factor, epoch_batches
from arseg_cli.train.losses import auxiliary_loss, fst_loss, segmentation_loss
from arseg_cli.train.metrics import read_metrics
from arseg_cli.train.run import start_lr_from_hr
from arseg_cli.model.creff import resize_bilinear

CPU = Processes(0, 1, torch.device("cpu"))


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread: the machine's cores are shared, and more threads than free cores make
    these small convolutions many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def config(**changes: object) -> TrainConfig:
    return train_config(**changes)


# --- losses -------------------------------------------------------------------------------------------
def test_segmentation_loss_ignores_255_and_matches_cross_entropy_by_hand() -> None:
    scores = torch.tensor([[[[2.0, 0.0]], [[0.0, 0.0]]]])  # (1, 2 classes, 1, 2 pixels)
    labels = torch.tensor([[[0, 255]]])
    expected = -torch.log_softmax(torch.tensor([2.0, 0.0]), 0)[0]  # only the first pixel counts
    assert torch.allclose(segmentation_loss(scores, labels, log_probs=False), expected)
    log_probs = torch.log_softmax(scores, dim=1)
    assert torch.allclose(segmentation_loss(log_probs, labels, log_probs=True), expected)


def test_segmentation_loss_of_an_all_ignored_batch_is_zero_not_nan() -> None:
    scores = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = segmentation_loss(scores, torch.full((1, 2, 2), 255), log_probs=False)
    loss.backward()
    assert float(loss.detach()) == 0.0 and scores.grad is not None and float(scores.grad.abs().sum()) == 0.0


def test_auxiliary_loss_weights_per_family() -> None:
    labels = torch.tensor([[[0, 1], [1, 255]]])
    scores = torch.randn(1, 3, 2, 2)
    ce = segmentation_loss(scores, labels, log_probs=False)
    assert torch.allclose(auxiliary_loss("camvid-bise18", (scores, scores), labels), 2.0 * ce)
    assert torch.allclose(auxiliary_loss("cityscapes-psp18", (scores,), labels), 0.4 * ce)
    image_scores = torch.tensor([[3.0, -1.0, 0.5]])  # image-level head: classes 0 and 1 present, 2 absent
    present = torch.tensor([[1.0, 1.0, 0.0]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(image_scores, present)
    assert torch.allclose(auxiliary_loss("camvid-psp18", (image_scores,), labels), 1.0 * bce)  # AR-Seg CamVid: 1.0


def test_fst_is_zero_for_equal_features_and_pulls_the_lr_feature_towards_hr() -> None:
    hr = torch.randn(2, 4, 6, 8)
    assert float(fst_loss(hr.clone(), hr)) == 0.0
    lr = (hr + 0.5).requires_grad_(True)  # LR feature above the HR one everywhere
    fst_loss(lr, hr).backward()
    assert lr.grad is not None
    assert torch.allclose(lr.grad, torch.full_like(hr, 2 * 0.5 / hr.numel()))  # d/dx mean((x-y)^2) = 2(x-y)/n
    small = torch.randn(2, 4, 3, 4, requires_grad=True)  # an LR feature is resized to the HR size first
    fst_loss(small, hr).backward()
    assert small.grad is not None and small.grad.shape == small.shape


# --- recipes and configuration ------------------------------------------------------------------------
def test_recipes_follow_the_official_training() -> None:
    camvid, cityscapes = recipe_for("camvid-psp18"), recipe_for("cityscapes-bise18")
    assert (camvid.optimizer, camvid.lr, camvid.batch, camvid.epochs, camvid.plain_fraction) == ("adam", 1e-3, 8, 100, 0.5)
    assert (cityscapes.optimizer, cityscapes.lr, cityscapes.momentum, cityscapes.weight_decay) == ("sgd", 0.01, 0.9, 5e-4)
    assert cityscapes.epochs == 200
    with pytest.raises(OptionsError):
        recipe_for("kitti-bise18")


def test_bad_settings_are_one_usage_error() -> None:
    with pytest.raises(OptionsError, match="scale"):
        config(scale=1.5)
    with pytest.raises(OptionsError, match="plain steps"):
        config(plain_steps=7)
    with pytest.raises(OptionsError, match="batch must be >= 2"):
        config(batch=1)


def test_cosine_schedule_and_data_order() -> None:
    assert cosine_factor(0, 10) == 1.0 and cosine_factor(5, 10) == pytest.approx(0.5) and cosine_factor(10, 10) == 0.0
    alone = epoch_batches(8, batch=4, processes=CPU, seed=3, epoch=1)
    halves = [epoch_batches(8, batch=2, processes=Processes(r, 2, CPU.device), seed=3, epoch=1) for r in (0, 1)]
    assert [halves[0][s] + halves[1][s] for s in range(2)] == alone  # DDP: the processes split each global batch
    assert sorted(sum(alone, [])) == list(range(8))
    assert epoch_batches(8, batch=4, processes=CPU, seed=3, epoch=2) != alone


# --- training -----------------------------------------------------------------------------------------
def test_hr_training_overfits_a_tiny_fixed_batch(tmp_path: Path) -> None:
    model = seeded_model(camvid_meta())
    metrics = tmp_path / "m.jsonl"
    result = Trainer(model, FakePairs(2), config(steps=30), CPU, metrics=metrics).run()
    records = read_metrics(metrics)
    assert [r["step"] for r in records] == list(range(1, 31))
    first, last = records[0]["loss"], result.final_loss
    assert last < 0.5 * first, (first, last)
    assert records[-1]["loss_seg"] < 0.6 * records[0]["loss_seg"]
    assert records[0]["lr"] == pytest.approx(1e-3) and records[-1]["lr"] < 1e-5  # cosine to ~0


def _ar_model() -> torch.nn.Module:
    model = seeded_model(camvid_meta(scale=0.5), seed=1)
    assert model.classifier_shared
    return model


def test_phase_ar_changes_only_the_lr_branch_and_creff() -> None:
    model = _ar_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Trainer(model, FakePairs(2), config(phase="ar", steps=3, plain_steps=1), CPU).run()
    after = model.state_dict()
    hr_keys = [k for k in after if k.startswith("hr.")]
    assert hr_keys and all(torch.equal(before[k], after[k]) for k in hr_keys)  # BN statistics included
    assert torch.equal(before["lr.final_conv.weight"], after["lr.final_conv.weight"])  # the shared classifier
    assert model.lr.final_conv is model.hr.final_conv
    changed = {k for k in after if k.startswith("lr.") and not torch.equal(before[k], after[k])}
    assert any(k.startswith("lr.fuse_attention.") for k in changed)
    assert any(k.startswith("lr.cp.") for k in changed)


def test_phase_ar_starts_as_the_hr_network_on_downscaled_frames() -> None:
    model = _ar_model()
    start_lr_from_hr(model)
    hr, lr = model.hr.state_dict(), model.lr.state_dict()
    own = [k for k in lr if not k.startswith("fuse_attention.")]
    assert own and all(torch.equal(lr[k], hr[k]) for k in own)
    model.eval()
    torch.manual_seed(0)
    lr_feat, key_feat = torch.randn(1, 256, 4, 6), torch.randn(1, 256, 8, 12)
    flow = torch.randn(1, 2, 64, 96) * 5
    with torch.no_grad():
        fused = model.lr.fuse(lr_feat, key_feat, flow)
    # CReFF adds 0 (the tiled CPU kernel interpolates in its own order: float32 rounding only)
    torch.testing.assert_close(fused, resize_bilinear(lr_feat, (8, 12), align_corners=True), rtol=0, atol=1e-6)


def test_phase_ar_identity_start_passes_the_centre_of_the_warped_keyframe_feature() -> None:
    model = _ar_model()
    start_lr_from_hr(model, creff_init="identity")
    value = model.lr.fuse_attention.hr_value_conv
    expected = torch.zeros_like(value.weight)
    expected[:, 0, 1, 1] = 1.0
    assert torch.equal(value.weight, expected) and torch.equal(value.bias, torch.zeros_like(value.bias))
    key_feat = torch.randn(1, 256, 8, 12)
    with torch.no_grad():
        assert torch.equal(value(key_feat), key_feat)  # the value is the warped feature itself
        lr_feat = torch.randn(1, 256, 4, 6)
        fused = model.lr.fuse(lr_feat, key_feat, torch.zeros(1, 2, 64, 96))
    # attention weights sum to 1 over in-image neighbours: the fusion now adds a local average of it
    assert not torch.allclose(fused, resize_bilinear(lr_feat, (8, 12), align_corners=True), atol=1e-3)


def test_phase_ar_plain_steps_leave_creff_untouched(tmp_path: Path) -> None:
    model = _ar_model()
    creff = {k: v.clone() for k, v in model.state_dict().items() if ".fuse_attention." in k}
    metrics = tmp_path / "m.jsonl"
    Trainer(model, FakePairs(2), config(phase="ar", steps=2, plain_steps=2), CPU, metrics=metrics).run()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in creff.items())
    assert [r["creff"] for r in read_metrics(metrics)] == [False, False]
    Trainer(model, FakePairs(2), config(phase="ar", steps=3, plain_steps=1), CPU, metrics=metrics).run()
    assert [r["creff"] for r in read_metrics(metrics)] == [False, True, True]
    assert any(not torch.equal(model.state_dict()[k], v) for k, v in creff.items())


def test_phase_ar_fst_term_is_logged_and_weighted(tmp_path: Path) -> None:
    metrics = tmp_path / "m.jsonl"
    Trainer(_ar_model(), FakePairs(2), config(phase="ar", steps=2, fst_weight=0.0), CPU, metrics=metrics).run()
    assert all(r["loss_fst"] == 0.0 for r in read_metrics(metrics))
    Trainer(_ar_model(), FakePairs(2), config(phase="ar", steps=2, fst_weight=2.0), CPU, metrics=metrics).run()
    records = read_metrics(metrics)
    assert all(r["loss_fst"] > 0 for r in records)
    assert all(r["loss"] == pytest.approx(r["loss_seg"] + r["loss_aux"] + 2.0 * r["loss_fst"], rel=1e-4) for r in records)


@pytest.mark.parametrize(("arch", "phase"), [("camvid-psp18", "hr"), ("camvid-bise18", "ar")])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path: Path, arch: str, phase: str) -> None:
    """6 steps over 3 epochs of 2 steps; the run dies after step 4, its last checkpoint is step 3.
    camvid-psp18 has dropout: the restored RNG states matter. Bit-identical on CPU. 32x48 items: the
    size plays no part in resuming, and 13 training steps of psp18 at 64x96 took ~10 s."""
    scale = 0.5 if phase == "ar" else None
    cfg = config(arch=arch, phase=phase, steps=6, checkpoint_every=3, plain_steps=2 if phase == "ar" else 0)

    def pairs() -> FakePairs:  # a fresh data set per run, as each run of the CLI has
        return FakePairs(4, height=32, width=48)

    straight = seeded_model(camvid_meta(arch, scale))
    whole = Trainer(straight, pairs(), cfg, CPU, checkpoint=tmp_path / "a.ckpt", metrics=tmp_path / "a.jsonl").run()

    ckpt, metrics = tmp_path / "b.ckpt", tmp_path / "b.jsonl"
    with pytest.raises(StopTraining):
        Trainer(seeded_model(camvid_meta(arch, scale)), pairs(), cfg, CPU, checkpoint=ckpt, metrics=metrics).run(
            stop_after(4)
        )
    state = load_checkpoint(ckpt)
    first_three = [r["seconds"] for r in read_metrics(metrics)][2]  # the interrupted run's time at step 3
    assert state["step"] == 3 and state["seconds"] >= first_three > 0  # the time of the run that wrote it counts
    resumed_model = seeded_model(camvid_meta(arch, scale), seed=99)  # other initial weights: all must come from the file
    resumed = Trainer(resumed_model, pairs(), cfg, CPU, checkpoint=ckpt, metrics=metrics).run(resume=True)
    assert resumed.seconds > state["seconds"]

    assert resumed.steps == whole.steps == 6 and resumed.final_loss == whole.final_loss
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed_model.state_dict()[name]), name
    assert [r["loss"] for r in read_metrics(metrics)] == [r["loss"] for r in read_metrics(tmp_path / "a.jsonl")]


def test_resume_refuses_other_settings_and_a_missing_checkpoint(tmp_path: Path) -> None:
    ckpt = tmp_path / "c.ckpt"
    Trainer(seeded_model(camvid_meta()), FakePairs(2), config(steps=1), CPU, checkpoint=ckpt).run()
    with pytest.raises(InputError, match="settings differ.*lr"):
        Trainer(seeded_model(camvid_meta()), FakePairs(2), config(steps=2, lr=0.5), CPU, checkpoint=ckpt).run(resume=True)
    with pytest.raises(InputNotFoundError, match="no checkpoint"):
        Trainer(seeded_model(camvid_meta()), FakePairs(2), config(), CPU, checkpoint=tmp_path / "x").run(resume=True)


def test_too_few_items_for_one_batch_is_an_input_error() -> None:
    with pytest.raises(InputError, match="fewer than one global batch"):
        Trainer(seeded_model(camvid_meta()), FakePairs(1), config(batch=2), CPU)
