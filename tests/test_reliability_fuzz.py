"""Mutation fuzz (tests/_fuzz.py), small budget: mutants of a valid clip through the decode + segment library
path and a few through the real CLI; zero uncaught exceptions, zero hangs. `make fuzz` runs a larger budget."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _corpus import valid_clip
from _forked_cli import ForkedCli
from _fuzz import fuzz, mutate
from _segment_fixtures import tiny_weights
from test_reliability_corpus import assert_no_crash, label_pngs

MUTANTS_PER_CONTAINER = 25
BUDGET_S = 20  # per container; a mutant takes ~0.1-0.5 s


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


def test_mutate_is_seeded_and_edits_the_bytes() -> None:
    data = bytes(range(256)) * 4
    first = mutate(data, np.random.default_rng(5))
    assert first == mutate(data, np.random.default_rng(5)) and first != data
    assert len({mutate(data, np.random.default_rng(seed)) for seed in range(20)}) == 20


@pytest.mark.parametrize("suffix", [".mp4", ".ts"])
def test_mutants_are_segmented_or_refused_never_uncaught_nor_hung(weights: Path, tmp_path: Path, suffix: str) -> None:
    clip = valid_clip(tmp_path / f"clip{suffix}")
    report = fuzz(clip, weights, tmp_path, seed=1, count=MUTANTS_PER_CONTAINER, budget_s=BUDGET_S)
    assert report.findings == [], json.dumps(report.findings, indent=1)
    assert report.inputs >= 4, report  # the budget is not all spent on starting up
    assert sum(report.outcomes.values()) == report.inputs


def test_mutants_through_the_cli_end_in_output_or_one_line(forked_cli: ForkedCli, weights: Path, tmp_path: Path) -> None:
    original = valid_clip(tmp_path / "clip.mkv").read_bytes()
    rng = np.random.default_rng(2)
    for index in range(4):
        source = tmp_path / f"mutant-{index}.mkv"
        source.write_bytes(mutate(original, rng))
        out = tmp_path / f"masks-{index}"
        outcome = forked_cli.run(["segment", str(source), "-o", str(out), "-w", str(weights), "-q"],
                                 tmp_path / f"run-{index}", timeout=90)  # fmt: skip
        assert_no_crash(outcome)  # logged warnings (motion fallback) aside, one line says what happened
        pngs = label_pngs(out)
        shown = [line for line in outcome.stderr.splitlines() if line.strip() and not line.startswith("WARNING ")]
        if outcome.code == 0:
            assert len(pngs) >= 1
        else:
            assert len(shown) == 1 and shown[0].startswith(("error: ", "warning: ")), outcome.stderr
