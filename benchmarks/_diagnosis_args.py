"""The arguments the CReFF diagnosis scripts share: a data set, AR weights, a split, a pair cache."""

from __future__ import annotations

import argparse
from pathlib import Path


def diagnosis_parser(description: str) -> argparse.ArgumentParser:
    """A parser with DATA, --weights, --split (default test), --cache and --limit."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("data", type=Path)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--cache", type=Path, default=None, help="PairCache directory (e.g. the one arseg eval used)")
    parser.add_argument("--limit", type=int, default=None)
    return parser
