"""The networks and the ARSeg wrapper on small random inputs: shapes, finiteness, training outputs,
the folded inference path, the per-frame calls and the registry."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from arseg_cli.errors import InputError, OptionsError
from arseg_cli.model import ARSeg, arch_config, build, list_archs
from arseg_cli.model._fold import fold_batchnorms
from arseg_cli.model._registry import register
from arseg_cli.model.architecture import CAMVID_MEAN, CAMVID_STD
from arseg_cli.model.meta import ModelMeta
from arseg_cli.palettes import CAMVID

ARCHS = ["camvid-psp18", "camvid-bise18", "cityscapes-psp18", "cityscapes-bise18"]
# (H, W): multiples of 32, of 8 only, and neither.
SIZES = [(64, 96), (72, 100), (45, 61)]
CLASSES = {"camvid-psp18": 12, "camvid-bise18": 12, "cityscapes-psp18": 19, "cityscapes-bise18": 19}
CHANNELS = {"camvid-psp18": 64, "camvid-bise18": 256, "cityscapes-psp18": 512, "cityscapes-bise18": 256}


def _ceil_div(n: int, d: int) -> int:
    return -(-n // d)


def _feature_size(arch: str, h: int, w: int) -> tuple[int, int]:
    """Where F lives: stride-2 steps round up (conv1, maxpool, layer2, ...)."""

    def os8(n: int) -> int:  # conv1, maxpool, layer2
        return _ceil_div(_ceil_div(_ceil_div(n, 2), 2), 2)

    if arch == "camvid-psp18":  # three x2 decoder stages on the OS-8 map
        return 8 * os8(h), 8 * os8(w)
    if arch == "cityscapes-psp18":
        return os8(h), os8(w)
    # BiSeNet: nearest x2 of layer3 (OS 16)
    return 2 * _ceil_div(os8(h), 2), 2 * _ceil_div(os8(w), 2)


def _randomise_batchnorms(net: nn.Module, seed: int = 0) -> None:
    """BN layers with non-trivial statistics, so that folding them is actually exercised."""
    gen = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
            m.weight.data.copy_(0.5 + torch.rand(n, generator=gen))
            m.bias.data.copy_(0.1 * torch.randn(n, generator=gen))


@pytest.fixture(scope="module")
def nets() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    built = {arch: build(arch) for arch in ARCHS}
    for net in built.values():
        _randomise_batchnorms(net)
        net.eval()
    return built


def test_registry_lists_the_four_architectures() -> None:
    assert list_archs() == sorted(ARCHS)
    assert {build(a).arch for a in ("camvid-bise18", "cityscapes-bise18")} == {"camvid-bise18", "cityscapes-bise18"}


def test_registry_refuses_a_duplicate_name() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(arch_config("camvid-psp18"))(lambda **kw: None)
    assert list_archs() == sorted(ARCHS)


def test_unknown_architecture_is_a_usage_error() -> None:
    with pytest.raises(OptionsError, match="unknown architecture 'psp50'.*camvid-psp18"):
        build("psp50")


def test_class_count_can_be_chosen() -> None:
    net = build("camvid-bise18", num_classes=5)
    assert net.num_classes == 5 and net.final_conv.out_channels == 5


@pytest.mark.parametrize("arch", ARCHS)
def test_shapes_of_scores_and_features_at_sizes_not_divisible_by_32(arch: str, nets: dict[str, nn.Module]) -> None:
    net = nets[arch]
    for h, w in SIZES:
        x = torch.randn(2, 3, h, w)
        with torch.no_grad():
            logits, feat = net(x)
        assert logits.shape == (2, CLASSES[arch], h, w)
        assert feat.shape == (2, CHANNELS[arch], *_feature_size(arch, h, w))
        assert torch.isfinite(logits).all() and torch.isfinite(feat).all()


def test_camvid_psp_scores_are_log_probabilities(nets: dict[str, nn.Module]) -> None:
    with torch.no_grad():
        logits, _ = nets["camvid-psp18"](torch.randn(1, 3, 45, 61))
    torch.testing.assert_close(logits.exp().sum(dim=1), torch.ones(1, 45, 61))


@pytest.mark.parametrize("arch", ARCHS)
def test_scores_are_final_conv_of_the_feature_resized_to_the_image(arch: str, nets: dict[str, nn.Module]) -> None:
    """At a size divisible by 8 every family's resize is the identity or the head's x8 upsampling."""
    net = nets[arch]
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        logits, feat = net(x)
        scores = nn.functional.conv2d(feat, net.final_conv.weight, net.final_conv.bias)
    if arch == "camvid-psp18":
        expected = torch.log_softmax(scores, dim=1)
    elif arch == "cityscapes-psp18":
        expected = nn.functional.interpolate(scores, size=(64, 96), mode="bilinear", align_corners=True)
    else:
        expected = nn.functional.interpolate(scores, scale_factor=8.0, mode="bilinear", align_corners=False)
    torch.testing.assert_close(logits, expected)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_parameter_gets_a_gradient_from_the_training_outputs(arch: str) -> None:
    torch.manual_seed(1)
    net = build(arch).train()
    feat, aux = net.features_and_aux(torch.randn(2, 3, 64, 64), aux=True)
    assert len(aux) == {"camvid-psp18": 1, "cityscapes-psp18": 1}.get(arch, 2)
    loss = net.to_image_size(net.classify(feat), (64, 64)).mean() + sum(a.float().pow(2).mean() for a in aux)
    loss.backward()
    no_grad = [name for name, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert no_grad == []


@pytest.mark.parametrize("arch", ARCHS)
def test_folded_copy_matches_the_network_and_leaves_it_untouched(arch: str, nets: dict[str, nn.Module]) -> None:
    net = nets[arch]
    keys_before = list(net.state_dict())
    folded = fold_batchnorms(net, channels_last=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert list(net.state_dict()) == keys_before
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    x = torch.randn(1, 3, 45, 61)
    with torch.no_grad():
        logits, feat = net(x)
        fast_logits, fast_feat = folded(x.contiguous(memory_format=torch.channels_last))
    # float32 re-association of conv and BN arithmetic: relative error ~1e-6 over ~20 layers
    torch.testing.assert_close(fast_feat, feat, rtol=1e-4, atol=1e-4 * float(feat.abs().max()))
    torch.testing.assert_close(fast_logits, logits, rtol=1e-4, atol=1e-4 * float(logits.abs().max()))


@pytest.mark.parametrize("arch", ARCHS)
def test_aliased_modules_are_one_module_under_two_names(arch: str, nets: dict[str, nn.Module]) -> None:
    net = nets[arch]
    state = net.state_dict()
    if arch.endswith("bise18"):
        assert net.final_conv is net.conv_out.conv_out and net.feat_conv_out is net.conv_out.conv
        assert state["final_conv.weight"].data_ptr() == state["conv_out.conv_out.weight"].data_ptr()
    elif arch == "cityscapes-psp18":
        assert net.final_conv is net.cls[4]
        assert state["final_conv.bias"].data_ptr() == state["cls.4.bias"].data_ptr()


# --- ARSeg -----------------------------------------------------------------------------------------


def _meta(arch: str, scale: float | None = 0.5, has_creff: bool = True) -> ModelMeta:
    return arch_config(arch).model_meta(scale=scale, has_creff=has_creff)


@pytest.fixture(scope="module")
def ar_models() -> dict[str, ARSeg]:
    torch.manual_seed(2)
    models = {arch: ARSeg(_meta(arch)) for arch in ARCHS}
    for model in models.values():
        _randomise_batchnorms(model)
        model.eval()
    return models


@pytest.mark.parametrize("arch", ARCHS)
def test_keyframe_and_nonkeyframe_give_scores_at_the_hr_size(arch: str, ar_models: dict[str, ARSeg]) -> None:
    model = ar_models[arch]
    for h, w in SIZES:
        x_hr = torch.randn(1, 3, h, w)
        x_lr = model.downscale(x_hr)
        assert x_lr.shape[-2:] == (int(h * 0.5), int(w * 0.5))
        flow = torch.zeros(1, 2, h, w)
        with torch.inference_mode():
            logits, feat = model.keyframe(x_hr)
            logits_lr = model.nonkeyframe(x_lr, feat, flow)
        assert logits.shape == logits_lr.shape == (1, CLASSES[arch], h, w)
        assert feat.shape == (1, CHANNELS[arch], *_feature_size(arch, h, w))
        assert torch.isfinite(logits).all() and torch.isfinite(logits_lr).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_inference_path_matches_the_plain_modules(arch: str, ar_models: dict[str, ARSeg]) -> None:
    """keyframe/nonkeyframe under inference_mode run folded channels-last copies; same numbers as the
    branches run directly (relative tolerance for float32 re-association)."""
    model = ar_models[arch]
    x_hr = torch.randn(1, 3, 64, 96)
    x_lr = model.downscale(x_hr)
    flow = torch.randn(1, 2, 64, 96)
    with torch.inference_mode():
        fast_logits, fast_feat = model.keyframe(x_hr)
        fast_lr = model.nonkeyframe(x_lr, fast_feat, flow)
    assert model.hr is not None and model.lr is not None
    with torch.no_grad(), torch.enable_grad():  # grad enabled: the plain (unfolded) modules run
        logits, feat = model.keyframe(x_hr)
        lr_logits = model.nonkeyframe(x_lr, feat, flow)
        direct_logits, direct_feat = model.hr(x_hr)
    torch.testing.assert_close(logits, direct_logits)
    torch.testing.assert_close(feat, direct_feat)
    for fast, plain in ((fast_logits, logits), (fast_feat, feat), (fast_lr, lr_logits)):
        torch.testing.assert_close(fast, plain.detach(), rtol=1e-4, atol=1e-4 * float(plain.detach().abs().max()))


def test_inference_copy_follows_weight_changes(ar_models: dict[str, ARSeg]) -> None:
    model = ARSeg(_meta("cityscapes-bise18", scale=None)).eval()
    assert model.hr is not None
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        before, _ = model.keyframe(x)
    with torch.no_grad():
        model.hr.final_conv.bias.add_(1.0)
    with torch.inference_mode():
        after, _ = model.keyframe(x)
    torch.testing.assert_close(after, before + 1.0, rtol=1e-5, atol=1e-4)


def test_a_model_converted_inside_inference_mode_runs() -> None:
    """`.double()` (or `.half()` on CUDA) inside inference_mode makes inference tensors, which have no
    version counter: the inference copy's signature must not ask for one (it used to raise)."""
    torch.manual_seed(0)
    model = ARSeg(_meta("camvid-bise18", scale=None)).eval()
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        expected, _ = model.double().keyframe(x)
    with torch.inference_mode():
        converted = ARSeg(_meta("camvid-bise18", scale=None)).eval()
        converted.load_state_dict(model.state_dict())
        converted.double()
        assert all(p.is_inference() for p in converted.parameters())
        logits, _ = converted.keyframe(x)
    torch.testing.assert_close(logits, expected, rtol=1e-10, atol=1e-10 * float(expected.abs().max()))


def test_eval_mode_is_deterministic(ar_models: dict[str, ARSeg]) -> None:
    model = ar_models["camvid-psp18"]
    x_hr = torch.randn(1, 3, 45, 61)
    flow = torch.randn(1, 2, 45, 61)
    with torch.inference_mode():
        runs = [model.nonkeyframe(model.downscale(x_hr), model.keyframe(x_hr)[1], flow) for _ in range(2)]
    assert torch.equal(runs[0], runs[1])


def test_normalize_uses_the_checkpoint_mean_and_std() -> None:
    model = ARSeg(_meta("camvid-bise18", scale=None))
    rgb = np.zeros((5, 7, 3), np.uint8)
    rgb[2, 3] = (255, 128, 0)
    x = model.normalize(rgb)
    assert x.shape == (1, 3, 5, 7) and x.dtype == torch.float32
    expected = [(v / 255.0 - m) / s for v, m, s in zip((255, 128, 0), CAMVID_MEAN, CAMVID_STD)]
    torch.testing.assert_close(x[0, :, 2, 3], torch.tensor(expected))
    batch = model.normalize(torch.from_numpy(np.stack([rgb, rgb])))
    assert batch.shape == (2, 3, 5, 7) and torch.equal(batch[1], x[0])
    with pytest.raises(InputError, match="uint8"):
        model.normalize(rgb.astype(np.float32))


def test_hr_only_model_refuses_nonkeyframes() -> None:
    model = ARSeg(_meta("camvid-bise18", scale=None)).eval()
    assert model.lr is None and model.scale is None
    with pytest.raises(OptionsError, match="no LR branch"):
        model.nonkeyframe(torch.randn(1, 3, 32, 32), torch.randn(1, 256, 8, 8), torch.zeros(1, 2, 64, 64))


def test_lr_baseline_keyframe_runs_the_lr_network_on_the_downscaled_frame() -> None:
    torch.manual_seed(3)
    model = ARSeg(_meta("camvid-bise18", scale=0.5, has_creff=False), has_hr=False).eval()
    assert model.hr is None and model.lr is not None and not model.has_creff
    x_hr = torch.randn(1, 3, 64, 96)
    with torch.no_grad(), torch.enable_grad():
        logits, feat = model.keyframe(x_hr)
        expected = model.lowres(model.downscale(x_hr), (64, 96))
        # without CReFF, nonkeyframe is the LR network alone; feat and flow values are ignored
        nonkey = model.nonkeyframe(model.downscale(x_hr), torch.zeros(0), torch.zeros(1, 2, 64, 96))
    assert logits.shape == (1, 12, 64, 96) and feat.shape == (1, 256, 4, 6)
    assert torch.equal(logits, expected) and torch.equal(nonkey, expected)


def test_nonkeyframe_checks_feature_and_flow_shapes(ar_models: dict[str, ARSeg]) -> None:
    model = ar_models["camvid-bise18"]
    x_lr = torch.randn(1, 3, 32, 48)
    with pytest.raises(InputError, match="flow must be"):
        model.nonkeyframe(x_lr, torch.randn(1, 256, 8, 12), torch.zeros(1, 64, 96))
    with pytest.raises(InputError, match="feat must be"):
        model.nonkeyframe(x_lr, torch.randn(1, 64, 8, 12), torch.zeros(1, 2, 64, 96))


@pytest.mark.parametrize("arch", ARCHS)
def test_lr_branch_uses_the_hr_classifier_module_under_all_its_names(arch: str) -> None:
    model = ARSeg(_meta(arch))
    assert model.hr is not None and model.lr is not None and model.classifier_shared
    assert model.lr.final_conv is model.hr.final_conv
    aliases = {"cityscapes-psp18": "cls.4", "camvid-bise18": "conv_out.conv_out", "cityscapes-bise18": "conv_out.conv_out"}
    if arch in aliases:
        assert model.lr.get_submodule(aliases[arch]) is model.hr.final_conv
    state = model.state_dict()
    assert state["lr.final_conv.weight"].data_ptr() == state["hr.final_conv.weight"].data_ptr()


def test_lr_classifier_is_separate_without_creff_or_when_meta_says_own() -> None:
    baseline = ARSeg(_meta("camvid-bise18", has_creff=False))
    own = ARSeg(replace(_meta("camvid-bise18"), lr_classifier="own"))
    for model in (baseline, own):
        assert model.lr is not None and model.hr is not None and not model.classifier_shared
        assert model.lr.final_conv is model.lr.conv_out.conv_out  # the alias stays intact


def test_freeze_hr_freezes_the_shared_classifier_and_keeps_hr_in_eval_mode() -> None:
    model = ARSeg(_meta("camvid-bise18"))
    assert model.hr is not None and model.lr is not None
    model.freeze_hr()
    model.train()
    assert not model.hr.training and model.lr.training
    assert not any(p.requires_grad for p in model.hr.parameters())
    assert not model.lr.final_conv.weight.requires_grad  # shared, hence frozen too
    assert model.lr.cp.resnet.conv1.weight.requires_grad


def test_state_dict_holds_branch_prefixed_official_keys() -> None:
    model = ARSeg(ModelMeta("camvid-psp18", CAMVID.classes, CAMVID.colors, CAMVID_MEAN, CAMVID_STD, scale=0.5))
    keys = set(model.state_dict())
    assert "hr.feats.conv1.weight" in keys and "lr.fuse_attention.lr_query_conv.weight" in keys
    assert not any(k.startswith("hr.fuse_attention") for k in keys)


# --- the configuration records ------------------------------------------------------------------------
@pytest.mark.parametrize("arch", list_archs())
def test_each_architecture_record_describes_the_network_it_builds(arch: str) -> None:
    """The record's classes, feature (channels, stride) and auxiliary heads are what the builder makes."""
    config = arch_config(arch)
    torch.manual_seed(0)
    net = build(arch).eval()
    assert config.arch == net.arch == arch
    assert net.num_classes == config.num_classes == CLASSES[arch]
    assert net.feature_channels == config.feature_channels == CHANNELS[arch]
    with torch.no_grad():
        feat, aux = net.features_and_aux(torch.randn(2, 3, 64, 96), aux=True)
    assert tuple(feat.shape) == (2, config.feature_channels, 64 // config.feature_stride, 96 // config.feature_stride)
    assert len(aux) == len(config.aux_heads)
    for head, scores in zip(config.aux_heads, aux):
        assert isinstance(getattr(net, head.module), nn.Module)
        assert scores.dim() == (2 if head.target == "classes_present" else 4)
        assert head.weight > 0


@pytest.mark.parametrize("arch", list_archs())
def test_each_architecture_record_marks_its_official_keys(arch: str) -> None:
    """The official key markers are keys of the network's state dict, and the detector finds the arch by them."""
    from arseg_cli.model.official import detect_arch

    official = arch_config(arch).official
    assert official is not None
    state = build(arch).state_dict()
    assert {official.backbone_key, official.classifier_key, *official.key_aliases, *official.key_aliases.values()} <= set(state)
    assert detect_arch(state) == arch
    assert detect_arch({k: v for k, v in state.items() if k != official.backbone_key}) is None


def test_the_log_probability_output_is_the_records_word() -> None:
    torch.manual_seed(0)
    for arch in list_archs():
        net = build(arch).eval()
        with torch.no_grad():
            scores, _ = net(torch.randn(2, 3, 32, 32))
        sums = scores.exp().sum(dim=1)
        assert torch.allclose(sums, torch.ones_like(sums), atol=1e-4) == arch_config(arch).log_probs


def test_a_new_architecture_is_its_record_and_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registering a record and a builder is all it takes: build, recipe, auxiliary losses, normalisation,
    paper figures and the official release table all follow the record."""
    from arseg_cli.bench.reference import paper_json
    from arseg_cli.model import _registry
    from arseg_cli.model.architecture import AuxHead, Recipe
    from arseg_cli.model.bisenet import CAMVID_BISE18, BiSeNet18
    from arseg_cli.model.flops import paper_costs
    from arseg_cli.model.official_release import reported_metrics
    from arseg_cli.train.config import recipe_for
    from arseg_cli.train.losses import auxiliary_loss, segmentation_loss

    monkeypatch.setattr(_registry, "_BUILDERS", dict(_registry._BUILDERS))
    monkeypatch.setattr(_registry, "_CONFIGS", dict(_registry._CONFIGS))
    record = replace(
        CAMVID_BISE18, arch="camvid-bise18-light", paper=None, official=None,
        recipe=Recipe("sgd", 0.05, 0.9, 1e-4, batch=4, epochs=3, plain_fraction=0.0),
        aux_heads=(AuxHead("conv_out16", "pixels", 0.25), AuxHead("conv_out32", "pixels", 0.5)),
    )  # fmt: skip
    _registry.register(record)(lambda num_classes=None, **kw: BiSeNet18(record, num_classes))
    assert "camvid-bise18-light" in list_archs() and build("camvid-bise18-light").arch == "camvid-bise18-light"
    assert recipe_for("camvid-bise18-light").lr == 0.05
    scores, labels = torch.randn(2, 12, 8, 8), torch.randint(0, 12, (2, 8, 8))
    ce = segmentation_loss(scores, labels, log_probs=False)
    assert torch.allclose(auxiliary_loss("camvid-bise18-light", (scores, scores), labels), 0.75 * ce)
    assert arch_config("camvid-bise18-light").model_meta(scale=0.5).mean == CAMVID_BISE18.mean
    assert paper_json("camvid-bise18-light") is None and reported_metrics("camvid-bise18-light", roles={"hr"}, scale=None) == {}
    with pytest.raises(ValueError, match="no published figures"):
        paper_costs("camvid-bise18-light", 64, 96, 0.5)
