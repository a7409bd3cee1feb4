"""CUDA graphs for the non-keyframe step (`Settings(cuda_graphs=True)`, `arseg segment --cuda-graphs`).

On a GPU the LR + CReFF step of a small batch is a few milliseconds of many short kernels, so the CPU's
launches bound it (issue 19). Here the step `FrameStep.nonkey` is captured once per input shape as a
`torch.cuda.CUDAGraph` that reads static input buffers (the normalised frames, the keyframe feature,
the flow) and writes a static score tensor; each later call of that shape copies its inputs into those
buffers and replays the graph.

- A batch smaller than the captured one (the last chunk of a group) is padded to it: the rows past the
  real frames keep whatever the buffers held and their scores are dropped. Each frame is computed on
  its own in inference (no batch statistics), so the padding does not change the real rows' maths; one
  graph per frame size, rather than one per batch size, keeps one GPU memory pool however the adaptive
  policy cuts the groups, and the remainder chunk (a third of the calls at L = 12, batch 4) still
  skips its launches, at the price of computing the padding rows. A larger batch than captured
  captures anew at that size. A single frame has a graph of its own (batch 1: the low-latency mode and
  one-frame remainders), since the eager step on one frame takes the keyframe feature unexpanded and
  its convolutions may round differently from a batch's.
- At most `MAX_SHAPES` shapes keep their graph (each holds its own memory pool); the least recently
  used is dropped for a new one.
- What cannot be captured runs eagerly, with at most one logged warning per step: a model not on CUDA,
  another backend than PyTorch's, CReFF's compiled attention, or any error while capturing.

Unmeasured on a GPU so far (docs/BENCHMARKS.md): `benchmarks/gpu_issue19.sh` compares graphs on and off.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from arseg_cli.frame_step import FrameStep

logger = logging.getLogger(__name__)

#: Input shapes whose captured graph is kept at once.
MAX_SHAPES = 4
#: Eager runs on a side stream before a capture (PyTorch's advice: kernels compiled, workspaces sized).
WARMUP_RUNS = 3

NonkeyCall = Callable[[Tensor, Tensor, "np.ndarray | Tensor"], Tensor]
Replay = Callable[[], None]
#: Captures a call that reads and writes only fixed tensors: (replay, the tensor the call returned,
#: which each replay rewrites in place).
Capture = Callable[[Callable[[], Tensor]], tuple[Replay, Tensor]]


def capture_cuda_graph(run: Callable[[], Tensor]) -> tuple[Replay, Tensor]:
    """`run` captured as a CUDA graph after warm-up runs on a side stream (PyTorch's recipe)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(WARMUP_RUNS):
            run()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        scores = run()
    return graph.replay, scores


def graphs_unavailable(step: FrameStep) -> str | None:
    """Why `step`'s model cannot run as CUDA graphs; None when it can."""
    model = step.model
    if not isinstance(model, torch.nn.Module):
        return "they need the PyTorch backend"
    if model.device.type != "cuda" or not torch.cuda.is_available():
        return f"the model runs on {model.device.type}, not CUDA"
    if step.dtype not in (torch.float32, torch.float16):
        return f"the model runs in {step.dtype}, not float32 or float16"
    if getattr(model, "compiled_attention", False):
        return "CReFF's attention is compiled (torch.compile)"
    return None


def nonkey_call(step: FrameStep, cuda_graphs: bool, *, capture: Capture | None = None, call: NonkeyCall | None = None) -> NonkeyCall:
    """`call` (default `step.nonkey`; any call of its signature, e.g. one giving labels), or a
    `GraphedNonkey` of it when `cuda_graphs` is asked and possible (one logged warning when asked and
    not possible). `capture`: how graphs are made (tests fake it)."""
    call = call or step.nonkey
    if not cuda_graphs:
        return call
    reason = graphs_unavailable(step) if capture is None else None
    if reason is not None:
        logger.warning("CUDA graphs not used: %s; running the non-keyframe step eagerly", reason)
        return call
    return GraphedNonkey(step, capture=capture or capture_cuda_graph, call=call)


@dataclass
class _Graph:
    replay: Replay
    x: Tensor
    feat: Tensor
    flow: Tensor
    scores: Tensor

    @property
    def batch(self) -> int:
        return self.x.shape[0]


_ShapeKey = tuple[object, ...]


class GraphedNonkey:
    """`FrameStep.nonkey(x, feat, flow_px)` (or `call`, of the same signature) replayed from CUDA graphs
    (module docstring).

    The result is a view of the graph's output: valid until the next call (GroupStep turns it into
    labels on the host at once). `feat` is the keyframe feature, batch 1 or expanded to the batch
    (stride 0, as GroupStep passes it), or one feature per frame.
    """

    def __init__(self, step: FrameStep, *, capture: Capture = capture_cuda_graph, max_shapes: int = MAX_SHAPES,
                 call: NonkeyCall | None = None) -> None:  # fmt: skip
        if max_shapes < 1:
            raise ValueError(f"max_shapes must be >= 1, got {max_shapes}")
        self.step, self._capture, self.max_shapes = step, capture, max_shapes
        self._call = call or step.nonkey
        self._graphs: OrderedDict[_ShapeKey, _Graph] = OrderedDict()
        self.failed: str | None = None  # why capturing failed; then every call runs eagerly

    @property
    def shapes(self) -> list[_ShapeKey]:
        """The shapes with a captured graph, least recently used first."""
        return list(self._graphs)

    def __call__(self, x: Tensor, feat: Tensor, flow_px: np.ndarray | Tensor) -> Tensor:
        n = x.shape[0]
        if self.failed is not None or feat.shape[0] != n:  # a wrong feature batch: the eager step says what is wrong
            return self._call(x, feat, flow_px)
        shared = n == 1 or feat.stride(0) == 0
        source_feat = feat[:1] if shared else feat
        flow = torch.as_tensor(flow_px)
        key = (n == 1, tuple(x.shape[1:]), x.dtype, tuple(source_feat.shape[1:]), shared, tuple(flow.shape[1:]))
        graph = self._graphs.get(key)
        if graph is None or graph.batch < n:
            try:
                graph = self._new_graph(key, x, source_feat, flow, shared)
            except torch.OutOfMemoryError:
                raise
            except Exception as error:  # noqa: BLE001 - capture raises whatever the captured ops raise
                return self._give_up(error, x, feat, flow_px)
        else:
            self._graphs.move_to_end(key)
            _copy_rows((graph.x, graph.feat, graph.flow), x, source_feat, flow, shared)
        graph.replay()
        return graph.scores[:n]

    def _new_graph(self, key: _ShapeKey, x: Tensor, feat: Tensor, flow: Tensor, shared: bool) -> _Graph:
        self._graphs.pop(key, None)
        while len(self._graphs) >= self.max_shapes:
            self._graphs.popitem(last=False)
        n = x.shape[0]
        static_x, static_flow = _buffer_like(x, n), _buffer_like(flow, n, dtype=self.step.dtype, device=x.device)
        static_feat = _buffer_like(feat, 1 if shared else n)
        static_feat_batch = static_feat.expand(n, -1, -1, -1) if shared and n > 1 else static_feat
        _copy_rows((static_x, static_feat, static_flow), x, feat, flow, shared)
        call = self._call

        def run() -> Tensor:  # reads only the static buffers: what a replay reads
            return call(static_x, static_feat_batch, static_flow)

        replay, scores = self._capture(run)
        graph = _Graph(replay=replay, x=static_x, feat=static_feat, flow=static_flow, scores=scores)
        self._graphs[key] = graph
        return graph

    def _give_up(self, error: Exception, x: Tensor, feat: Tensor, flow_px: np.ndarray | Tensor) -> Tensor:
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        self.failed = reason
        self._graphs.clear()
        logger.warning("CUDA graph capture failed (%s); running the non-keyframe step eagerly", reason)
        return self._call(x, feat, flow_px)


def _buffer_like(t: Tensor, batch: int, *, dtype: torch.dtype | None = None, device: torch.device | None = None) -> Tensor:
    """Zeros (batch, *t.shape[1:]) in t's memory layout (channels-last stays channels-last: the eager
    call's kernels, and so its numbers, follow the layout)."""
    channels_last = t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return torch.zeros((batch, *t.shape[1:]), dtype=dtype or t.dtype, device=device or t.device).contiguous(memory_format=layout)


def _copy_rows(buffers: tuple[Tensor, Tensor, Tensor], x: Tensor, feat: Tensor, flow: Tensor, shared: bool) -> None:
    """This call's inputs into the first rows of a graph's buffers (x, feat, flow): copied, since a
    replay reads the buffers' fixed addresses."""
    static_x, static_feat, static_flow = buffers
    n = x.shape[0]
    static_x[:n].copy_(x)
    static_flow[:n].copy_(flow)
    static_feat[: 1 if shared else n].copy_(feat)


__all__ = ["MAX_SHAPES", "Capture", "GraphedNonkey", "capture_cuda_graph", "graphs_unavailable", "nonkey_call"]
