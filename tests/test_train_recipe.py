"""The official training recipe's pieces: OHEM, CReFF's kaiming start, phase lr, and phase ar's cache of
the frozen HR features (a cached step equals an uncached one; a cached run resumes exactly; a cache
made from other weights or data is refused)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from _train_fixtures import FakePairs, StopTraining, camvid_meta, seeded_model, stop_after, train_config
from arseg_cli.errors import InputError
from arseg_cli.model import build_arseg
from arseg_cli.train import TrainConfig, Trainer
from arseg_cli.train.distributed import Processes
from arseg_cli.train.feature_cache import FeatureCache, weights_hash
from arseg_cli.train.losses import ohem_loss, official_pixel_loss, segmentation_loss
from arseg_cli.train.objective import PhaseObjective
from arseg_cli.train.run import initialise_creff, start_lr_from_hr

CPU = Processes(0, 1, torch.device("cpu"))


def config(**changes: object) -> TrainConfig:
    return train_config(**({"phase": "ar", "steps": 4} | changes))


# --- OHEM ---------------------------------------------------------------------------------------------
def _scores_with_true_probability(probabilities: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-class scores (1, 2, 1, P) whose pixel p gives class 0 (its label) the probability given."""
    p = torch.tensor(probabilities, dtype=torch.float64)
    logits = torch.stack([torch.log(p), torch.log1p(-p)]).view(1, 2, 1, -1)
    return logits, torch.zeros(1, 1, len(probabilities), dtype=torch.int64)


def test_ohem_averages_exactly_the_pixels_harder_than_the_threshold() -> None:
    probabilities = [0.95, 0.9, 0.6, 0.3, 0.8, 0.1, 0.75, 0.65] * 4  # 32 pixels, 16 below 0.7
    scores, labels = _scores_with_true_probability(probabilities)
    hard = [-math.log(p) for p in probabilities if p < 0.7]
    assert float(ohem_loss(scores, labels, log_probs=False)) == pytest.approx(sum(hard) / len(hard), rel=1e-12)
    # the plain mean counts the easy pixels too
    assert float(segmentation_loss(scores, labels, log_probs=False)) < sum(hard) / len(hard)
    # log-probability outputs (camvid-psp18's) give the same selection
    log_probs = F.log_softmax(scores, dim=1)
    assert float(ohem_loss(log_probs, labels, log_probs=True)) == pytest.approx(sum(hard) / len(hard), rel=1e-12)


def test_ohem_keeps_at_least_a_sixteenth_of_the_pixels_and_ignores_255() -> None:
    probabilities = [0.99] * 30 + [0.5, 0.9]  # one pixel harder than the threshold, 32 // 16 = 2 kept
    scores, labels = _scores_with_true_probability(probabilities)
    expected = (-math.log(0.5) - math.log(0.9)) / 2  # the two largest losses
    assert float(ohem_loss(scores, labels, log_probs=False)) == pytest.approx(expected, rel=1e-12)
    labels[0, 0, 30] = 255  # the hardest pixel ignored: 31 valid, keep 1, the next hardest
    assert float(ohem_loss(scores, labels, log_probs=False)) == pytest.approx(-math.log(0.9), rel=1e-12)


def test_the_official_pixel_loss_per_family() -> None:
    assert official_pixel_loss("camvid-bise18") == "ohem" and official_pixel_loss("cityscapes-bise18") == "ohem"
    assert official_pixel_loss("camvid-psp18") == "ce" and official_pixel_loss("cityscapes-psp18") == "ce"
    assert config().creff_init == "kaiming"


# --- CReFF's official initialisation --------------------------------------------------------------------
def test_kaiming_start_draws_q_k_v_with_std_one_third_and_zero_bias() -> None:
    model = seeded_model(camvid_meta(scale=0.5))
    start_lr_from_hr(model, creff_init="kaiming")
    creff = model.lr.fuse_attention
    for conv in (creff.lr_query_conv, creff.hr_key_conv, creff.hr_value_conv):
        weights = conv.weight.detach().flatten()  # 256 channels x 9 taps: fan-in 9, gain 1 (a = 1)
        assert weights.numel() == 256 * 9
        # std of 2304 normal draws: standard error ~1.5 %; 6 % is 4 standard errors
        assert float(weights.std()) == pytest.approx(1 / 3, rel=0.06)
        assert abs(float(weights.mean())) < 4 * (1 / 3) / math.sqrt(weights.numel())
        assert torch.equal(conv.bias, torch.zeros_like(conv.bias))
    first = creff.hr_value_conv.weight.clone()
    initialise_creff(creff, "kaiming")
    assert not torch.equal(first, creff.hr_value_conv.weight)  # drawn, not a fixed pattern
    with pytest.raises(ValueError, match="unknown CReFF initialisation"):
        initialise_creff(creff, "ones")  # type: ignore[arg-type]


# --- phase lr -------------------------------------------------------------------------------------------
def test_phase_lr_trains_a_plain_lr_network_on_downscaled_frames() -> None:
    meta = camvid_meta(scale=0.5)
    model = build_arseg(replace(meta, has_creff=False), has_hr=False)
    assert model.hr is None and model.lr is not None and not model.has_creff
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen: list[tuple[int, ...]] = []
    features_and_aux = model.lr.features_and_aux

    def spy(x: torch.Tensor, **kwargs: object):  # noqa: ANN202
        seen.append(tuple(x.shape))
        return features_and_aux(x, **kwargs)

    model.lr.features_and_aux = spy  # type: ignore[method-assign]
    Trainer(model, FakePairs(2), config(phase="lr", steps=2, loss="ohem"), CPU).run()
    assert seen and all(shape[-2:] == (32, 48) for shape in seen)  # 64x96 frames at s = 0.5
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="plain LR network"):
        PhaseObjective(seeded_model(camvid_meta(scale=0.5)), "lr")


# --- phase ar's feature cache -------------------------------------------------------------------------------
def _ar_model(seed: int = 0) -> torch.nn.Module:
    model = seeded_model(camvid_meta(scale=0.5), seed=seed)
    start_lr_from_hr(model, creff_init="kaiming")
    return model


def _cache(directory: Path, model, items: int = 4, variants: int = 2, data: str = "fake") -> FeatureCache:  # noqa: ANN001
    identity = {"hr_weights_sha256": weights_hash(model.hr), "data": {"name": data}}
    return FeatureCache(directory, identity=identity, items=items, variants=variants)


def _loss_and_grads(model, batch, slots, cache) -> tuple[float, dict[str, torch.Tensor]]:  # noqa: ANN001
    model.freeze_hr()
    objective = PhaseObjective(model, "ar", loss="ohem", feature_cache=cache)
    model.zero_grad(set_to_none=True)
    model.train()
    losses = objective(batch["key"], batch["cur"], batch["flow"], batch["labels"], True, slots)
    losses.total.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return float(losses.total.detach()), grads


def test_a_cached_step_equals_an_uncached_one(tmp_path: Path) -> None:
    pairs = FakePairs(4, variants=2)
    pairs.set_epoch(1)
    items = [pairs[i] for i in (2, 0)]
    batch = {k: torch.stack([item[k] for item in items]) for k in ("key", "cur", "flow", "labels")}
    slots = [1 * 4 + 2, 1 * 4 + 0]  # variant 1 of items 2 and 0
    model = _ar_model()
    cache = _cache(tmp_path / "f", model)
    assert cache.slot(2, 1) == slots[0] and cache.slot(0, 3) == slots[1]
    plain_loss, plain_grads = _loss_and_grads(model, batch, None, None)
    filling_loss, filling_grads = _loss_and_grads(model, batch, slots, cache)  # computes and stores
    assert cache.missing(slots) == []
    reopened = _cache(tmp_path / "f", model)
    cached_loss, cached_grads = _loss_and_grads(model, batch, slots, reopened)  # read from disk
    for loss, grads in ((filling_loss, filling_grads), (cached_loss, cached_grads)):
        assert loss == pytest.approx(plain_loss, abs=1e-5)
        assert grads.keys() == plain_grads.keys() and plain_grads
        for name, grad in grads.items():
            torch.testing.assert_close(grad, plain_grads[name], rtol=0, atol=1e-5, msg=name)
    # each slot holds its own item's features, and other items' slots hold others
    objective = PhaseObjective(model, "ar")
    key_feat, target = objective.frozen_features(batch["key"], objective.normalize(batch["cur"]), None)
    stored_key, stored_target = reopened.get(slots, torch.device("cpu"))
    assert torch.equal(stored_key, key_feat) and torch.equal(stored_target, target)
    other = [cache.slot(1, 1), cache.slot(3, 1)]
    others = [pairs[i] for i in (1, 3)]
    _loss_and_grads(model, {k: torch.stack([item[k] for item in others]) for k in batch}, other, reopened)
    assert not torch.equal(reopened.get(other, torch.device("cpu"))[0], key_feat)


def test_a_cached_run_resumes_exactly(tmp_path: Path) -> None:
    cfg = config(steps=6, checkpoint_every=3, augment_variants=2, loss="ohem")
    straight = _ar_model()
    Trainer(straight, FakePairs(4, variants=2), cfg, CPU, checkpoint=tmp_path / "a.ckpt",
            feature_cache=_cache(tmp_path / "fa", straight)).run()  # fmt: skip
    first = _ar_model()
    with pytest.raises(StopTraining):
        Trainer(first, FakePairs(4, variants=2), cfg, CPU, checkpoint=tmp_path / "b.ckpt",
                feature_cache=_cache(tmp_path / "fb", first)).run(stop_after(4))  # fmt: skip
    resumed = _ar_model(seed=5)
    resumed.hr.load_state_dict(first.hr.state_dict())  # the same HR network, as the cache requires
    Trainer(resumed, FakePairs(4, variants=2), cfg, CPU, checkpoint=tmp_path / "b.ckpt",
            feature_cache=_cache(tmp_path / "fb", resumed)).run(resume=True)  # fmt: skip
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


def test_a_cache_from_other_weights_or_data_is_refused_in_one_line(tmp_path: Path) -> None:
    model = _ar_model()
    cache = _cache(tmp_path / "f", model)
    cache.put([0], torch.zeros(1, 4, 2, 2), torch.zeros(1, 4, 2, 2))
    with pytest.raises(InputError, match="made from other weights or data.*hr_weights_sha256") as caught:
        _cache(tmp_path / "f", _ar_model(seed=1))
    assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match="made from other weights or data.*data"):
        _cache(tmp_path / "f", model, data="other")
    with pytest.raises(InputError, match="made from other weights or data.*variants"):
        _cache(tmp_path / "f", model, variants=3)
    with pytest.raises(InputError, match="one size"):
        cache.put([1], torch.zeros(1, 4, 3, 2), torch.zeros(1, 4, 3, 2))
    with pytest.raises(InputError, match="phase ar in one process"):
        Trainer(seeded_model(camvid_meta()), FakePairs(2), config(phase="hr"), CPU, feature_cache=cache)


def test_a_damaged_cache_or_a_full_disk_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _ar_model()
    cache = _cache(tmp_path / "f", model)
    cache.put([0], torch.ones(1, 4, 2, 2), torch.ones(1, 4, 2, 2))
    assert (tmp_path / "f" / "key.f16").stat().st_size == 8 * 4 * 2 * 2 * 2  # allocated whole: 8 slots
    with open(tmp_path / "f" / "target.f16", "r+b") as file:
        file.truncate(10)
    with pytest.raises(InputError, match="damaged.*target.f16") as caught:
        _cache(tmp_path / "f", model)
    assert "\n" not in str(caught.value)

    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage(10**6, 0, 10))
    small_disk = _cache(tmp_path / "g", model)
    with pytest.raises(InputError, match="needs .* GB .* free: use `no_feature_cache`"):
        small_disk.put([0], torch.ones(1, 4, 2, 2), torch.ones(1, 4, 2, 2))
