"""Mutation fuzz over HEVC inputs through arseg's parser: the parser alone on mutated packets and headers
(tests/_hevc_fuzz.py), and mutated HEVC files through the probe + decode + segment path (tests/_fuzz.py).
No crash, no hang, no exception other than the one-line errors. `make hevc-asan` runs this file with the
parser built with AddressSanitizer, so a read outside the buffer is a crash here. Skipped, naming why,
where the parser is not built."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from arseg_cli.video._hevc_motion import parser_problem

if parser_problem() is not None:
    pytest.skip(str(parser_problem()), allow_module_level=True)

from _corpus import frames_of  # noqa: E402
from _fuzz import fuzz  # noqa: E402
from _hevc_fuzz import LAYOUTS, fuzz_parser, valid_hevc_clip  # noqa: E402
from _segment_fixtures import tiny_weights  # noqa: E402

# Budgets for the test suite (a parser mutant takes ~4 ms, a file through decode + segment 0.1-0.5 s);
# HEVC_FUZZ_COUNT (parser mutants) and HEVC_FUZZ_BUDGET_S (seconds per test) raise them.
COUNT = int(os.environ.get("HEVC_FUZZ_COUNT", "1000"))
BUDGET_S = float(os.environ.get("HEVC_FUZZ_BUDGET_S", "30"))
FILE_MUTANTS = 25


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    directory = tmp_path_factory.mktemp("hevc-fuzz")
    frames = frames_of(8)
    made = []
    for name, (params, pix_fmt) in LAYOUTS.items():
        for suffix in (".mkv", ".hevc"):  # hvcC headers, and Annex B parameter sets in the packets
            made.append(valid_hevc_clip(directory / f"{name}{suffix}", frames, params=params, pix_fmt=pix_fmt))
    return made


def test_parser_mutants_parse_or_are_refused_in_one_line_never_crash_nor_hang(clips: list[Path]) -> None:
    report = fuzz_parser(clips, seed=1, count=COUNT, budget_s=BUDGET_S)
    assert report.findings == [], json.dumps(report.findings, indent=1)
    assert report.inputs >= min(COUNT, 2 * len(clips)), report
    assert sum(report.outcomes.values()) == report.inputs


@pytest.mark.parametrize("suffix", [".mkv", ".hevc"])
def test_hevc_file_mutants_through_decode_and_segment(tmp_path: Path, suffix: str) -> None:
    weights = tiny_weights(tmp_path / "tiny.safetensors")
    clip = valid_hevc_clip(tmp_path / f"clip{suffix}", frames_of(6))
    report = fuzz(clip, weights, tmp_path, seed=2, count=FILE_MUTANTS, budget_s=BUDGET_S)
    assert report.findings == [], json.dumps(report.findings, indent=1)
    assert report.inputs >= 4, report
