"""`arseg weights info` and `arseg weights import`: what they print, what they write, how they fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arseg_cli.cli import app
from arseg_cli.errors import WeightsError
from arseg_cli.model.official_release import OfficialFiles, find_official_files, official_file_scale
from arseg_cli.model.weights import save_weights
from test_weights import _StandIn  # tests/ is on sys.path (pytest rootdir-relative import)


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
    assert rows["parameters"] == "hr 348, lr 348, total 696"  # conv 224 + BN 16 + classifier 108 per branch


def test_info_json_is_one_parseable_object(weights_file: Path) -> None:
    code, output = _run("weights", "info", "--json", str(weights_file))
    assert code == 0, output
    record = json.loads(output)
    assert record["meta"] == _StandIn().meta.to_json()
    assert record["parameters"]["total"] == sum(p.numel() for p in _StandIn().parameters())
    assert record["storage_dtype"] == "float32" and record["aliases"] == 4


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
        (["a_b_1.0_1_.pth"], ["a_b_0.3_1_.pth", "a_b_0.5_1_.pth"], None, r"scales 0.3, 0.5: choose one with --scale"),
        (["a_b_1.0_1_.pth"], ["a_b_0.3_1_.pth"], 0.5, r"no AR file for scale 0.5 \(scales there: 0.3\)"),
        (["a_b_1.0_1_.pth"], ["a_b_0.5_1_.pth", "a_b_0.5_2_.pth"], 0.5, "several AR files for scale 0.5"),
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
