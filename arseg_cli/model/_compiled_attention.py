"""Opt-in `torch.compile` of one tile's window attention, for the CPU kernel in `_local_attention.py`.

Why: the kernel's uncompiled attention is band GEMMs of 4 x C x 10 (MKL's fixed cost per tiny matrix
bounds it) plus a softmax and band copies. Inductor turns the plain definition (49 dot products over C,
softmax, weighted sum of 49 values) into one vectorised C++ loop nest over the tile's pixels, about
1.4x faster for the whole CReFF call (figures in docs/BENCHMARKS.md, "Compiled attention").

Costs, and why it is off by default: the first call in a process compiles (~12 s on a cold inductor
cache, ~2-3 s warm), it needs a C++ compiler at run time, and it serves the CPU only. A model asks for it
(`ARSeg.use_compiled_attention`, the CLI's `--compile`: a CReFF module's `compiled_attention`); if
compiling fails, the kernel logs one warning and keeps its uncompiled path for the rest of the process.

Two details the speed depends on: `cpp_wrapper` makes the compiled call release the GIL (the kernel's
worker threads run tiles side by side; inductor's default Python wrapper holds the GIL through the
kernel, which serialises them); and the OpenMP thread count is fixed when the code is generated, so there
is one compiled function per thread count (1 for worker threads, torch's count for a single worker).
"""

from __future__ import annotations

import logging
import threading
import types
from collections.abc import Callable

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

#: (queries (n, C), keys, values, n, padded_width) -> (n, C); see `_local_attention._Tiles`.
Attention = Callable[[Tensor, Tensor, Tensor, int, int], Tensor]

_lock = threading.Lock()
_state: dict[str, bool] = {"failed": False}
_functions: dict[tuple[int, int], Attention] = {}
_ready: set[tuple[int, int, torch.dtype, int, bool]] = set()


def compile_failed() -> bool:
    """True once compiling the attention has failed in this process (the kernel then stays uncompiled)."""
    return _state["failed"]


def attention_for(threads: int, window: int, dtype: torch.dtype, channels: int) -> Attention | None:
    """The compiled attention for a tile worker running `threads` OpenMP threads, compiled now (on the
    calling thread, before any worker calls it) if it was not; None when compiling failed."""
    if compile_failed():
        return None
    key = (threads, window, dtype, channels, torch.is_inference_mode_enabled())
    with _lock:
        function = _functions.get((threads, window))
        if function is None:
            function = _functions[(threads, window)] = _compile(threads, window)
        if key not in _ready:
            try:
                _warm_up(function, threads, window, dtype, channels)
            except Exception as error:  # noqa: BLE001 - inductor raises many kinds (compiler missing, codegen)
                _state["failed"] = True
                reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                logger.warning("compiled CReFF attention unavailable (%s); using the uncompiled kernel", reason[:200])
                return None
            _ready.add(key)
    return function


def _window_attention(q: Tensor, k: Tensor, v: Tensor, n: int, padded_width: int) -> Tensor:
    """sum_k softmax_k(<q, k_k>) v_k for n flat query pixels: the neighbour (dy, dx) of query p is
    key/value p + dy * padded_width + dx (the stores of `_local_attention._Tiles`). `WINDOW`, the
    window size, is a global of each compiled copy's own globals (see _compile): a constant to the compiler."""
    window = WINDOW  # noqa: F821 - bound per compiled copy (see _compile)
    channels = q.shape[-1]
    size, strides = (n, window, window, channels), (channels, padded_width * channels, channels, 1)
    logits = (q[:, None, None, :] * k.as_strided(size, strides)).sum(-1)
    weights = logits.view(n, window * window).softmax(-1).view(n, window, window, 1)
    return (weights * v.as_strided(size, strides)).sum((1, 2))


def _compile(threads: int, window: int) -> Attention:
    """A compiled copy of `_window_attention` for one thread count and window. Each copy gets its own
    code object: dynamo keeps its compiled graphs per code object, and the copies must not share them."""
    name = f"_window_attention_{window}x{window}_{threads}_threads"
    code = _window_attention.__code__.replace(co_name=name)
    function = types.FunctionType(code, {**_window_attention.__globals__, "WINDOW": window}, name)
    options = {"cpp_wrapper": True, "cpp.threads": threads}
    return torch.compile(function, dynamic=True, options=options)  # type: ignore[return-value]


def _warm_up(function: Attention, threads: int, window: int, dtype: torch.dtype, channels: int) -> None:
    """Compile for this dtype, grad mode and thread count (dynamo guards on all three) with shapes of the
    stores' form (sizes of 2 or more, so that none is specialised): later tiles of any size reuse it."""
    rows, padded_width = 2, window + 3
    n = rows * padded_width
    q = torch.zeros(n, channels, dtype=dtype)
    keys, values = (torch.zeros((rows + window) * padded_width + window, channels, dtype=dtype) for _ in "kv")
    caller_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():  # the kernel runs tiles without grad (and in the caller's inference mode)
            function(q, keys, values, n, padded_width)
    finally:
        torch.set_num_threads(caller_threads)
