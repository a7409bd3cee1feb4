"""Reading and checking the header of a safetensors file before any tensor is read, so that a wrong,
truncated or pickled file gives one line naming what is wrong."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

from arseg_cli.errors import WeightsError, WeightsNotFoundError

_MAX_HEADER_BYTES = 100 * 1024 * 1024
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def read_header(path: Path) -> tuple[dict[str, Any], int]:
    """Parse and check the safetensors header of `path`: (header dict, file size in bytes)."""
    if not path.exists():
        raise WeightsNotFoundError(f"weights file {path} does not exist")
    if not path.is_file():
        raise WeightsError(f"{path} is not a file")
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
            file_bytes = os.fstat(handle.fileno()).st_size
            if _looks_like_pickle(head):
                raise WeightsError(
                    f"{path} looks like a PyTorch pickle, not arseg weights; convert it with `arseg weights import`"
                )
            if len(head) < 8:
                raise WeightsError(f"{path} is not a safetensors file ({file_bytes} bytes)")
            (header_len,) = struct.unpack("<Q", head)
            if header_len > _MAX_HEADER_BYTES:
                raise WeightsError(f"{path} is not a safetensors file (no valid header)")
            raw = handle.read(header_len)
    except OSError as error:
        raise WeightsError(f"cannot read {path}: {error.strerror or error}") from None
    if len(raw) < header_len:
        if raw[:1] == b"{":
            raise WeightsError(f"{path} is truncated: its header is incomplete")
        raise WeightsError(f"{path} is not a safetensors file (no valid header)")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WeightsError(f"{path} is not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path} is not a safetensors file (header is not a JSON object)")
    data_bytes = file_bytes - 8 - header_len
    needed = _check_entries(path, header)
    if needed > data_bytes:
        raise WeightsError(f"{path} is truncated: tensor data needs {needed} bytes, the file has {data_bytes}")
    return header, file_bytes


def _check_entries(path: Path, header: dict[str, Any]) -> int:
    """Validate each tensor entry of a safetensors header; return the bytes of tensor data it needs."""
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = (int(v) for v in entry["data_offsets"])
            count = 1
            for d in entry["shape"]:
                count *= int(d)
            item = _DTYPE_BYTES[entry["dtype"]]
        except (KeyError, TypeError, ValueError):
            raise WeightsError(f"{path} is not a valid safetensors file (bad entry for {name!r})") from None
        if stop - begin != count * item or begin < 0:
            raise WeightsError(f"{path} is not a valid safetensors file (bad entry for {name!r})")
        end = max(end, stop)
    return end


def _looks_like_pickle(head: bytes) -> bool:
    """torch.save writes a zip archive (new format) or a raw pickle (protocol 2+ starts with 0x80)."""
    return head.startswith(b"PK\x03\x04") or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)
