"""The metrics file: one JSON object per line, one line per logged step (appended on resume)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from arseg_cli.atomic_files import os_errors_as_output_errors


class MetricsLog:
    """Append-only JSONL writer; `truncate_after(step)` drops lines a resumed run will write again."""

    def __init__(self, path: Path, *, append: bool) -> None:
        self.path = path
        with os_errors_as_output_errors(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file: TextIO = path.open("a" if append else "w", encoding="utf-8")

    def truncate_after(self, step: int) -> None:
        """Keep only the records of steps <= `step` (a crash after the last checkpoint leaves later ones)."""
        self._file.close()
        kept = [line for line in read_metrics(self.path) if int(line.get("step", 0)) <= step]
        with os_errors_as_output_errors(self.path):
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
            self._file = self.path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        with os_errors_as_output_errors(self.path):
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics file, in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
