"""`arseg weights info` and `arseg weights import`: what they print, what they write, how they fail."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from arseg_cli.cli import app
from arseg_cli.errors import OptionsError, WeightsError
from arseg_cli.model import build, list_archs
from arseg_cli.model.official_release import OfficialFiles, find_official_files, official_file_scale, reported_metrics
from arseg_cli.model.weights import read_info, save_weights
from test_weights import _creff_landed, _outputs, _StandIn  # tests/ is on sys.path (pytest rootdir-relative import)


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


@pytest.fixture
def weights_file(tmp_path: Path) -> Path:
    return save_weights(_StandIn(), tmp_path / "m.safetensors")


def test_info_prints_the_metadata(weights_file: Path) -> None:
    code, output = _run("weights", "info", str(weights_file))
    assert code == 0, output
    rows = {line.split("  ", 1)[0]: line.split("  ", 1)[1].strip() for line in output.splitlines()}
    assert rows["arch"] == "camvid-psp18"
    assert rows["classes"].startswith("12: sky, building")
    assert rows["scale"] == "0.5" and rows["warp"] == "official" and rows["keyframe interval"] == "12"
    assert rows["provenance.data"] == "unit test"
    assert rows["branches"] == "hr, lr"
    assert rows["parameters"] == "hr 348, lr 348, total 696"  # conv 224 + BN 16 + classifier 108 per branch
    assert rows["CReFF"] == "yes" and rows["input padding"] == "none"


def test_info_json_is_one_parseable_object(weights_file: Path) -> None:
    code, output = _run("weights", "info", "--json", str(weights_file))
    assert code == 0, output
    record = json.loads(output)
    assert record["meta"] == _StandIn().meta.to_json()
    assert record["parameters"]["total"] == sum(p.numel() for p in _StandIn().parameters())
    assert record["storage_dtype"] == "float32" and record["aliases"] == 4 and record["branches"] == ["hr", "lr"]


@pytest.mark.parametrize("content", [b"\x00" * 3, b"PK\x03\x04 a zip archive"], ids=["junk", "pickle"])
def test_info_on_a_bad_file_exits_1_with_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    code, output = _run("weights", "info", str(path))
    assert code == 1
    assert "bad.pth" in _one_error_line(output)


def test_info_on_a_missing_file_exits_1(tmp_path: Path) -> None:
    code, output = _run("weights", "info", str(tmp_path / "none.safetensors"))
    assert code == 1
    assert "does not exist" in _one_error_line(output)


# --- the official release layout ----------------------------------------------------------------


def _release(root: Path, arch: str, hr: list[str], ar: list[str]) -> Path:
    for folder, names in (("HR", hr), ("AR", ar)):
        (root / arch / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            (root / arch / folder / name).write_bytes(name.encode())
    return root


def test_official_file_names_give_the_scale() -> None:
    assert official_file_scale("AR/PSPNet_resnet18_0.5_87_.pth") == 0.5
    assert official_file_scale("BiSeNet_resnet18_0.3_99_.pth") == 0.3
    assert official_file_scale("model.pth") is None


def test_release_directory_gives_hr_and_ar_at_the_scale(tmp_path: Path) -> None:
    ars = ["PSPNet_resnet18_0.3_90_.pth", "PSPNet_resnet18_0.5_87_.pth", "PSPNet_resnet18_0.7_80_.pth"]
    root = _release(tmp_path, "camvid-psp18", ["PSPNet_resnet18_1.0_100_.pth"], ars)
    expected = OfficialFiles(
        hr=root / "camvid-psp18/HR/PSPNet_resnet18_1.0_100_.pth", ar=root / "camvid-psp18/AR/PSPNet_resnet18_0.5_87_.pth"
    )
    assert find_official_files(root, arch="camvid-psp18", scale=0.5) == expected
    assert find_official_files(root / "camvid-psp18", arch="camvid-psp18", scale=0.5) == expected


@pytest.mark.parametrize(
    ("hr", "ar", "scale", "message"),
    [
        (["a_b_1.0_1_.pth"], ["a_b_0.3_1_.pth", "a_b_0.5_1_.pth"], None, r"scales 0.3, 0.5: choose one with scale s"),
        (["a_b_1.0_1_.pth"], ["a_b_0.3_1_.pth"], 0.5, r"AR: no file for scale 0.5 \(scales there: 0.3\)"),
        (["a_b_1.0_1_.pth"], ["a_b_0.5_1_.pth", "a_b_0.5_2_.pth"], 0.5, "AR: several files for scale 0.5"),
        (["a_b_1.0_1_.pth", "a_b_1.0_2_.pth"], ["a_b_0.5_1_.pth"], 0.5, "exactly one .pth file"),
        ([], ["a_b_0.5_1_.pth"], 0.5, r"exactly one .pth file \(found: none\)"),
    ],
)
def test_release_directory_problems_are_named(
    tmp_path: Path, hr: list[str], ar: list[str], scale: float | None, message: str
) -> None:
    root = _release(tmp_path, "camvid-bise18", hr, ar)
    with pytest.raises(WeightsError, match=message):
        find_official_files(root, arch="camvid-bise18", scale=scale)


def test_a_directory_that_is_no_release_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not an official AR-Seg release"):
        find_official_files(tmp_path, arch="camvid-psp18")


def test_import_refuses_ar_and_lr_together(tmp_path: Path) -> None:
    code, output = _run(
        "weights", "import", str(tmp_path / "hr.pth"), "--arch", "camvid-psp18", "--ar", "a.pth", "--lr", "b.pth",
        "-o", str(tmp_path / "out.safetensors"),
    )  # fmt: skip
    assert code == 2
    assert "either --ar or --lr" in _one_error_line(output)


def test_release_directory_kinds_pick_hr_alone_or_lr_alone(tmp_path: Path) -> None:
    root = _release(tmp_path, "camvid-bise18", ["B_r_1.0_9_.pth"], ["B_r_0.5_9_.pth"])
    (root / "camvid-bise18/LR").mkdir()
    (root / "camvid-bise18/LR/B_r_0.5_7_.pth").write_bytes(b"x")
    arch_dir = root / "camvid-bise18"
    assert find_official_files(root, arch="camvid-bise18", kind="hr") == OfficialFiles(hr=arch_dir / "HR/B_r_1.0_9_.pth")
    assert find_official_files(arch_dir, arch=None, kind="lr") == OfficialFiles(lr=arch_dir / "LR/B_r_0.5_7_.pth")
    with pytest.raises(OptionsError, match="choose one with `arch`"):
        find_official_files(root, arch=None)


def test_reported_miou_applies_only_to_the_files_it_was_reported_for() -> None:
    assert reported_metrics("camvid-psp18", roles={"hr", "ar"}, scale=0.5)["miou"] == {"hr": 69.43, "ar@0.5": 70.48}
    assert reported_metrics("camvid-psp18", roles={"hr", "ar"}, scale=0.7)["miou"] == {"hr": 69.43}
    assert reported_metrics("cityscapes-bise18", roles={"lr"}, scale=0.5)["miou"] == {"lr@0.5": 66.89}
    assert reported_metrics("camvid-bise18", roles={"lr"}, scale=0.3) == {}


# --- converting real official-format files --------------------------------------------------------


def _official_file(path: Path, arch: str, *, fuse: bool = False, seed: int = 0) -> Path:
    """A file laid out like the release: the state_dict of a DataParallel model (`module.` keys)."""
    torch.manual_seed(seed)
    net = build(arch, fuse=fuse)
    gen = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(0.1 * torch.randn(module.num_features, generator=gen))
            module.running_var.copy_(0.5 + torch.rand(module.num_features, generator=gen))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({f"module.{key}": value for key, value in net.state_dict().items()}, path)
    return path


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """checkpoints/camvid-bise18/{HR,LR}/ with one file each (AR added by the test that needs CReFF)."""
    root = tmp_path_factory.mktemp("release") / "checkpoints"
    _official_file(root / "camvid-bise18/HR/BiSeNet_resnet18_1.0_100_.pth", "camvid-bise18", seed=1)
    _official_file(root / "camvid-bise18/LR/BiSeNet_resnet18_0.5_90_.pth", "camvid-bise18", seed=2)
    return root


def _same_outputs(imported: Path, **official_files: Path) -> None:
    from arseg_cli.model import load_official, load_weights

    reference = load_official(**official_files)
    converted = load_weights(imported)
    assert converted.meta.arch == reference.meta.arch and converted.meta.warp == "official"
    for expected, got in zip(_outputs(reference), _outputs(converted), strict=True):
        assert torch.equal(expected, got)


def test_import_hr_alone_keeps_outputs_and_records_provenance(official: Path, tmp_path: Path) -> None:
    hr = official / "camvid-bise18/HR/BiSeNet_resnet18_1.0_100_.pth"
    out = tmp_path / "hr.safetensors"
    code, output = _run("weights", "import", str(hr), "-o", str(out))  # arch recognised from the keys
    assert code == 0, output
    assert output.strip() == str(out)
    _same_outputs(out, hr=hr)
    meta = read_info(out).meta
    assert meta.provenance["files"]["hr"] == {"name": hr.name, "sha256": hashlib.sha256(hr.read_bytes()).hexdigest()}
    assert meta.provenance["data"].startswith("CamVid")
    assert meta.provenance["command"] == f"arseg weights import {hr} -o {out}"
    assert meta.provenance["date"].endswith("+00:00")
    assert meta.metrics["miou"] == {"hr": 71.57} and "not measured by arseg" in meta.metrics["miou_source"]
    assert read_info(out).branches == ("hr",)


def test_import_lr_alone_from_a_release_directory(official: Path, tmp_path: Path) -> None:
    out = tmp_path / "lr.safetensors"
    code, output = _run("weights", "import", str(official), "--arch", "camvid-bise18", "--kind", "lr", "-o", str(out), "--fp16")
    assert code == 0, output
    info = read_info(out)
    assert info.branches == ("lr",) and info.meta.scale == 0.5 and not info.meta.has_creff
    assert info.storage_dtype == "float16" and info.meta.metrics["miou"] == {"lr@0.5": 66.55}
    code, output = _run("weights", "info", str(out))
    assert code == 0 and "\nbranches  " in output
    assert {line.split()[0]: line.split()[1:] for line in output.splitlines()}["branches"] == ["lr"]
    assert info.meta.provenance["command"] == f"arseg weights import {official} -o {out} --arch camvid-bise18 --kind lr --fp16"


def test_import_hr_with_lr_file_gives_identical_outputs(official: Path, tmp_path: Path) -> None:
    hr = official / "camvid-bise18/HR/BiSeNet_resnet18_1.0_100_.pth"
    lr = official / "camvid-bise18/LR/BiSeNet_resnet18_0.5_90_.pth"
    out = tmp_path / "hrlr.safetensors"
    code, output = _run("weights", "import", str(hr), "--lr", str(lr), "--arch", "camvid-bise18", "-o", str(out))
    assert code == 0, output
    _same_outputs(out, hr=hr, lr=lr)


@pytest.mark.skipif(not _creff_landed(), reason="CReFF not landed yet")
def test_import_hr_and_ar_gives_identical_outputs(official: Path, tmp_path: Path) -> None:
    hr = official / "camvid-bise18/HR/BiSeNet_resnet18_1.0_100_.pth"
    ar = _official_file(tmp_path / "AR/BiSeNet_resnet18_0.5_87_.pth", "camvid-bise18", fuse=True, seed=3)
    out = tmp_path / "ar.safetensors"
    code, output = _run("weights", "import", str(hr), "--ar", str(ar), "-o", str(out))
    assert code == 0, output
    _same_outputs(out, hr=hr, ar=ar)
    meta = read_info(out).meta
    assert meta.has_creff and meta.scale == 0.5 and meta.metrics["miou"] == {"hr": 71.57, "ar@0.5": 70.37}


def test_import_refuses_to_overwrite_and_names_bad_files(official: Path, tmp_path: Path) -> None:
    hr = official / "camvid-bise18/HR/BiSeNet_resnet18_1.0_100_.pth"
    out = tmp_path / "exists.safetensors"
    out.write_bytes(b"keep me")
    code, output = _run("weights", "import", str(hr), "-o", str(out))
    assert code == 1 and "exists" in _one_error_line(output) and out.read_bytes() == b"keep me"
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00" * 64)
    code, output = _run("weights", "import", str(junk), "-o", str(tmp_path / "x.safetensors"))
    assert code == 1 and "junk.pth" in _one_error_line(output)
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "x.safetensors"], "nothing to import"),
        (["hr.pth", "--kind", "lr", "-o", "x.safetensors"], "--kind chooses files in a release directory"),
        (["--ar", "a.pth", "-o", "x.safetensors"], "needs the HR file"),
    ],
)
def test_import_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    code, output = _run("weights", "import", *args)
    assert code == 2
    assert message in _one_error_line(output)


# --- arseg weights archs, and --arch taking the registry's ids ------------------------------------------
def test_archs_lists_every_registered_architecture_with_its_record() -> None:
    code, output = _run("weights", "archs")
    assert code == 0, output
    assert [line.split()[0] for line in output.splitlines()] == list_archs()
    assert "camvid-psp18         camvid (12 classes), F 64 ch at 1/1, paper mIoU HR 69.43 / AR@0.5 70.48" in output
    code, output = _run("weights", "archs", "--json")
    records = {record["arch"]: record for record in json.loads(output)}
    assert set(records) == set(list_archs())
    assert records["cityscapes-bise18"]["data"]["palette"] == "cityscapes"
    assert records["camvid-bise18"]["aux_heads"] == [
        {"module": "conv_out16", "target": "pixels", "weight": 1.0},
        {"module": "conv_out32", "target": "pixels", "weight": 1.0},
    ]


def test_the_arch_option_takes_what_the_registry_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A newly registered architecture is an --arch choice with no CLI change; an unknown id is refused."""
    from dataclasses import replace

    from arseg_cli.cli._arch import parse_arch
    from arseg_cli.model import _registry, arch_config

    for arch in list_archs():
        assert parse_arch(arch) == arch
    with pytest.raises(typer.BadParameter, match="unknown architecture 'camvid-tiny'"):
        parse_arch("camvid-tiny")
    monkeypatch.setattr(_registry, "_BUILDERS", dict(_registry._BUILDERS))
    monkeypatch.setattr(_registry, "_CONFIGS", dict(_registry._CONFIGS))
    _registry.register(replace(arch_config("camvid-bise18"), arch="camvid-tiny"))(lambda **kw: None)
    assert parse_arch("camvid-tiny") == "camvid-tiny"
    code, output = _run("weights", "import", "--lr", "missing.pth", "--arch", "nope", "-o", "x.safetensors")
    assert code == 2 and "unknown architecture 'nope': choose one of camvid-bise18, camvid-psp18, camvid-tiny" in output
