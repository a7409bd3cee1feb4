"""Deterministic shards of an input list, for splitting a run without any engine (`--shard K/N`).

A video's shard depends on its own path only (a hash of it), not on its position in the list: array
jobs that start at different times and list a directory that grows meanwhile still agree on which
shard each video belongs to, so every video is run by exactly one of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from arseg_cli.errors import OptionsError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Shard:
    """The `index`-th (1-based) of `count` shards."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'K/N' with 1 <= K <= N; OptionsError otherwise."""
        parts = text.split("/")
        if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
            raise OptionsError(f"`shard` {text!r}: give K/N, the K-th of N shards (1 <= K <= N), e.g. 2/8")
        index, count = int(parts[0]), int(parts[1])
        if not 1 <= index <= count:
            raise OptionsError(f"`shard` {text!r}: K must be between 1 and N")
        return cls(index, count)

    def holds(self, source: str) -> bool:
        return shard_of(source, self.count) == self.index

    def select(self, items: Sequence[T], key: Sequence[str]) -> list[T]:
        """The items (in order) whose key (their input path) falls in this shard."""
        return [item for item, name in zip(items, key, strict=True) if self.holds(name)]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(source: str, count: int) -> int:
    """The shard (1..count) of the input `source`: a hash of its path as given, stable across machines."""
    digest = hashlib.sha256(source.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


__all__ = ["Shard", "shard_of"]
