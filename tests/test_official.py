"""Official AR-Seg checkpoints: key-for-key compatibility with the released files (built from the key list
in tests/data/official_keys.json), `load_official`'s roles, scale and arch handling, and its errors."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch
from torch import Tensor

from arseg_cli.errors import OptionsError, WeightsError
from arseg_cli.model import build, load_official
from arseg_cli.model.official import FUSION_PREFIX, PREFIX, prepare_state, read_official, scale_from_name

KEYS = json.loads((Path(__file__).parent / "data" / "official_keys.json").read_text())
ARCHS = sorted(KEYS)
# Modules the official nets register under two names (OFFICIAL.md): alias prefix -> stored prefix.
ALIASES = {
    "camvid-bise18": {"final_conv.": "conv_out.conv_out.", "feat_conv_out.": "conv_out.conv."},
    "cityscapes-bise18": {"final_conv.": "conv_out.conv_out.", "feat_conv_out.": "conv_out.conv."},
    "cityscapes-psp18": {"final_conv.": "cls.4."},
}
DTYPES = {"float32": torch.float32, "int64": torch.int64}
SIZE = (40, 56)  # small, and not a multiple of 32


def official_state(arch: str, role: str, seed: int = 0) -> dict[str, Tensor]:
    """A state dict as an official file holds it: keys with `module.`, the shapes and dtypes listed for
    `role` ('HR' or 'AR'), random values (positive BN variances), aliased entries one tensor.

    A fresh copy each call (tests edit the tensors) of one drawn once per process: cloning costs a
    quarter of drawing the ~12M random values, and many tests use the same few states."""
    made = _official_state(arch, role, seed)
    copies: dict[int, Tensor] = {}
    state: dict[str, Tensor] = {}
    for key, value in made.items():
        if id(value) not in copies:
            copies[id(value)] = value.clone()
        state[key] = copies[id(value)]  # an alias stays the same tensor as its stored entry
    return state


@functools.lru_cache(maxsize=8)
def _official_state(arch: str, role: str, seed: int) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, Tensor] = {}
    for key, shape, dtype in KEYS[arch][role]:
        if dtype == "int64":
            state[key] = torch.randint(0, 1000, shape, generator=gen, dtype=torch.int64)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=gen)
        else:
            state[key] = 0.1 * torch.randn(shape, generator=gen, dtype=DTYPES[dtype])
    for alias, stored in ALIASES.get(arch, {}).items():
        for key in list(state):
            if key.startswith(PREFIX + alias):
                state[key] = state[PREFIX + stored + key[len(PREFIX + alias) :]]
    return state


def lr_state_of(ar: dict[str, Tensor]) -> dict[str, Tensor]:
    """An LR-baseline file: the AR keys without the 6 CReFF ones."""
    return {k: v for k, v in ar.items() if not k.removeprefix(PREFIX).startswith(FUSION_PREFIX)}


def stripped(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k.removeprefix(PREFIX): v for k, v in state.items()}


def save(state: dict[str, Tensor], path: Path) -> Path:
    torch.save(state, path)
    return path


def release(tmp_path: Path, arch: str, *, scale: str = "0.5", same_classifier: bool = True) -> dict[str, Path]:
    """HR, AR and LR files of `arch` named as in the release (the AR classifier copied from HR, as FST does)."""
    hr = official_state(arch, "HR", seed=1)
    ar = official_state(arch, "AR", seed=2)
    if same_classifier:
        for key in ("final_conv.weight", "final_conv.bias"):
            ar[PREFIX + key].copy_(hr[PREFIX + key])
    net = "BiSeNet" if "bise" in arch else "PSPNet"
    return {
        "hr": save(hr, tmp_path / f"{net}_resnet18_1.0_100_.pth"),
        "ar": save(ar, tmp_path / f"{net}_resnet18_{scale}_87_.pth"),
        "lr": save(lr_state_of(official_state(arch, "AR", seed=3)), tmp_path / f"{net}_resnet18_{scale}_99_.pth"),
    }


# --- the key lists themselves --------------------------------------------------------------------


def test_the_key_list_has_the_documented_aliases_and_creff_keys() -> None:
    for arch in ARCHS:
        hr = {k for k, _, _ in KEYS[arch]["HR"]}
        ar = {k for k, _, _ in KEYS[arch]["AR"]}
        assert len(ar - hr) == (0 if arch == "cityscapes-psp18" else 6)
        assert len({k for k in ar if k.startswith(PREFIX + FUSION_PREFIX)}) == 6
        for alias, stored in ALIASES.get(arch, {}).items():
            aliased = {k[len(PREFIX + alias) :] for k in ar if k.startswith(PREFIX + alias)}
            assert aliased and aliased == {k[len(PREFIX + stored) :] for k in ar if k.startswith(PREFIX + stored)}
    assert len(KEYS["cityscapes-psp18"]["HR"]) == 168


# --- strict loading, file by file ---------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_ar_and_lr_files_load_strictly_into_the_networks(arch: str) -> None:
    ar = stripped(official_state(arch, "AR"))
    net = build(arch, fuse=True)
    net.load_state_dict(ar, strict=True)
    assert torch.equal(net.fuse_attention.hr_key_conv.weight, ar["fuse_attention.hr_key_conv.weight"])
    assert torch.equal(net.final_conv.weight, ar["final_conv.weight"])
    build(arch).load_state_dict(lr_state_of(ar), strict=True)


@pytest.mark.parametrize("arch", ["camvid-psp18", "camvid-bise18", "cityscapes-bise18"])
def test_hr_files_load_strictly_into_the_networks(arch: str) -> None:
    hr = stripped(official_state(arch, "HR"))
    net = build(arch)
    net.load_state_dict(hr, strict=True)
    assert torch.equal(net.final_conv.bias, hr["final_conv.bias"])


def test_cityscapes_psp_hr_files_with_168_or_160_keys_both_load_strictly() -> None:
    full = stripped(official_state("cityscapes-psp18", "HR"))
    phase1 = {k: v for k, v in full.items() if not k.startswith((FUSION_PREFIX, "final_conv."))}
    assert (len(full), len(phase1)) == (168, 160)
    for state in (full, phase1):
        net = build("cityscapes-psp18")
        net.load_state_dict(prepare_state(state, "cityscapes-psp18", "hr"), strict=True)
        assert torch.equal(net.final_conv.weight, full["cls.4.weight"]) and net.final_conv is net.cls[4]


# --- load_official ------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_hr_plus_ar_gives_an_ar_model_with_the_official_weights(arch: str, tmp_path: Path) -> None:
    files = release(tmp_path, arch)
    model = load_official(hr=files["hr"], ar=files["ar"], arch=arch)
    assert (model.arch, model.scale, model.meta.warp, model.has_creff) == (arch, 0.5, "official", True)
    assert not model.training and model.classifier_shared
    assert model.hr is not None and model.lr is not None
    for branch, role in ((model.hr, "hr"), (model.lr, "ar")):
        stored = prepare_state(read_official(files[role]), arch, role)
        assert all(torch.equal(value, stored[key]) for key, value in branch.state_dict().items())
    x = torch.randn(1, 3, *SIZE)
    with torch.inference_mode():
        logits, feat = model.keyframe(x)
        logits_lr = model.nonkeyframe(model.downscale(x), feat, torch.zeros(1, 2, *SIZE))
    assert logits.shape == logits_lr.shape == (1, model.num_classes, *SIZE)
    assert torch.isfinite(logits).all() and torch.isfinite(logits_lr).all()
    assert model.meta.provenance["files"] == {"hr": files["hr"].name, "ar": files["ar"].name}


def test_hr_alone_is_the_per_frame_baseline_and_lr_alone_the_lr_baseline(tmp_path: Path) -> None:
    files = release(tmp_path, "camvid-bise18")
    hr_only = load_official(hr=files["hr"])
    assert hr_only.arch == "camvid-bise18" and hr_only.lr is None and hr_only.scale is None
    lr_only = load_official(lr=files["lr"])
    assert lr_only.hr is None and lr_only.lr is not None and not lr_only.has_creff and lr_only.scale == 0.5
    assert torch.equal(lr_only.lr.final_conv.weight, read_official(files["lr"])["final_conv.weight"])
    with torch.inference_mode():
        logits, feat = lr_only.keyframe(torch.randn(1, 3, *SIZE))
    assert logits.shape == (1, 12, *SIZE) and feat.shape[1] == 256


def test_lr_files_with_unused_creff_keys_load_as_lr_baselines(tmp_path: Path) -> None:
    """The official evaluation builds the LR network with the fusion class, so LR files may carry them."""
    path = save(official_state("camvid-psp18", "AR"), tmp_path / "PSPNet_resnet18_0.3_99_.pth")
    model = load_official(lr=path)
    assert model.scale == 0.3 and not model.has_creff


def test_an_ar_classifier_that_differs_from_the_hr_one_is_kept_as_stored(tmp_path: Path) -> None:
    files = release(tmp_path, "cityscapes-bise18", same_classifier=False)
    model = load_official(hr=files["hr"], ar=files["ar"])
    assert model.meta.lr_classifier == "own" and not model.classifier_shared
    assert model.lr is not None and model.hr is not None
    assert torch.equal(model.lr.final_conv.weight, read_official(files["ar"])["final_conv.weight"])
    assert torch.equal(model.hr.final_conv.weight, read_official(files["hr"])["final_conv.weight"])


def test_scale_comes_from_the_file_name_or_the_argument(tmp_path: Path) -> None:
    assert scale_from_name("AR/PSPNet_resnet18_0.5_87_.pth") == 0.5 and scale_from_name("model.pth") is None
    files = release(tmp_path, "camvid-bise18", scale="0.7")
    assert load_official(hr=files["hr"], ar=files["ar"]).scale == 0.7
    assert load_official(hr=files["hr"], ar=files["ar"], scale=0.7).scale == 0.7
    with pytest.raises(OptionsError, match="clashes"):
        load_official(hr=files["hr"], ar=files["ar"], scale=0.5)
    renamed = files["ar"].rename(tmp_path / "ar.pth")
    with pytest.raises(OptionsError, match="pass scale="):
        load_official(hr=files["hr"], ar=renamed)
    assert load_official(hr=files["hr"], ar=renamed, scale=0.25).scale == 0.25


def test_cityscapes_psp_hr_file_without_aliases_pairs_with_its_ar_file(tmp_path: Path) -> None:
    files = release(tmp_path, "cityscapes-psp18")
    full = torch.load(files["hr"], weights_only=True)
    phase1 = {k: v for k, v in full.items() if not k.startswith((PREFIX + FUSION_PREFIX, PREFIX + "final_conv."))}
    model = load_official(hr=save(phase1, tmp_path / "hr160.pth"), ar=files["ar"], arch="cityscapes-psp18")
    assert model.classifier_shared and model.hr is not None and model.hr.final_conv is model.hr.cls[4]


# --- errors ------------------------------------------------------------------------------------


def test_wrong_architecture_is_named(tmp_path: Path) -> None:
    files = release(tmp_path, "camvid-bise18")
    with pytest.raises(WeightsError, match=r"does not fit camvid-psp18: .*missing.*looks like a camvid-bise18"):
        load_official(hr=files["hr"], arch="camvid-psp18")
    (tmp_path / "psp").mkdir()
    other = release(tmp_path / "psp", "camvid-psp18")
    with pytest.raises(WeightsError, match="different architectures"):
        load_official(hr=files["hr"], ar=other["ar"])
    with pytest.raises(OptionsError, match="unknown architecture"):
        load_official(hr=files["hr"], arch="psp50")
    with pytest.raises(WeightsError, match=r"has shape \(12, .* expected \(19, .*looks like a camvid-bise18"):
        load_official(hr=files["hr"], arch="cityscapes-bise18")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop(PREFIX + "ffm.convblk.conv.weight"), r"1 missing \(ffm.convblk.conv.weight\), 0 unexpected"),
        (lambda s: s.__setitem__(PREFIX + "extra.weight", torch.zeros(1)), r"0 missing, 1 unexpected \(extra.weight\)"),
        (lambda s: s.__setitem__(PREFIX + "sp.conv1.conv.weight", torch.zeros(64, 3, 3, 3)), r"sp.conv1.conv.weight has shape \(64, 3, 3, 3\)"),
        (lambda s: s.__setitem__(PREFIX + "final_conv.bias", torch.ones(12)), "should be one module stored twice but differ"),
    ],
)
def test_damaged_state_dicts_give_one_line_naming_the_problem(edit, message: str, tmp_path: Path) -> None:  # noqa: ANN001
    state = official_state("camvid-bise18", "HR")
    edit(state)
    path = save(state, tmp_path / "BiSeNet_resnet18_1.0_100_.pth")
    with pytest.raises(WeightsError, match=message) as caught:
        load_official(hr=path, arch="camvid-bise18")
    assert "\n" not in str(caught.value) and "BiSeNet_resnet18_1.0_100_.pth" in str(caught.value)


def test_files_in_the_wrong_role_are_refused(tmp_path: Path) -> None:
    files = release(tmp_path, "camvid-psp18")
    with pytest.raises(WeightsError, match="CReFF keys.*pass it as ar="):
        load_official(hr=files["ar"])
    with pytest.raises(WeightsError, match="no CReFF keys"):
        load_official(hr=files["hr"], ar=files["lr"])
    with pytest.raises(OptionsError, match="needs the HR file"):
        load_official(ar=files["ar"])
    with pytest.raises(OptionsError, match="not both"):
        load_official(hr=files["hr"], ar=files["ar"], lr=files["lr"])
    with pytest.raises(OptionsError, match="no checkpoint"):
        load_official()


def test_files_that_are_not_checkpoints_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    good = save(official_state("camvid-bise18", "HR"), tmp_path / "good.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    listing = save([torch.zeros(1)], tmp_path / "list.pth")  # type: ignore[arg-type]
    for path, message in (
        (text, r"notes.pth: not a PyTorch checkpoint \(it starts with b.not "),
        (truncated, "truncated.pth: damaged or truncated PyTorch checkpoint"),
        (listing, "list.pth: not a state dict"),
        (tmp_path / "missing.pth", "not found"),
    ):
        with pytest.raises(WeightsError, match=message) as caught:
            load_official(hr=path)
        assert "\n" not in str(caught.value)


class _Planted:
    """An object whose unpickling would create a file (what a malicious checkpoint could do)."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.target,))


def test_pickled_code_is_never_run(tmp_path: Path) -> None:
    target = tmp_path / "planted"
    state = official_state("camvid-bise18", "HR")
    path = tmp_path / "evil.pth"
    torch.save({**state, "module.payload": _Planted(target)}, path)
    with pytest.raises(WeightsError, match="evil.pth: refused, it holds pickled objects other than tensors"):
        load_official(hr=path)
    assert not target.exists()


def test_an_imported_ar_model_keeps_its_shared_classifier_through_arseg_weights(tmp_path: Path) -> None:
    from arseg_cli.model import load_weights, save_weights

    files = release(tmp_path, "camvid-bise18")
    model = load_official(hr=files["hr"], ar=files["ar"])
    back = load_weights(save_weights(model, tmp_path / "model.safetensors"))
    assert back.classifier_shared and back.meta.warp == "official" and back.scale == 0.5
    assert all(torch.equal(value, back.state_dict()[key]) for key, value in model.state_dict().items())
