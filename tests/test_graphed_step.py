"""CUDA graphs for the non-keyframe step (arseg_cli/graphed_step.py).

On the CPU the capture is faked: `FakeCapture` runs the captured call once (its result is the static
output) and each replay runs it again into that same tensor, which is what a CUDA graph's replay does.
The call reads only the static buffers, so right outputs after new inputs show that the inputs were
copied into those buffers. The real capture runs in the CUDA tests at the end (skipped without CUDA).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import Tensor

from _segment_fixtures import tiny_model
from arseg_cli import graphed_step
from arseg_cli.errors import OptionsError
from arseg_cli.frame_step import FrameStep
from arseg_cli.graphed_step import GraphedNonkey, graphs_unavailable, nonkey_call
from arseg_cli.group_step import GroupStep
from arseg_cli.groups import ScheduledFrame
from arseg_cli.model.arseg import ARSeg
from arseg_cli.pipeline import Settings
from arseg_cli.request import SegmentRequest
from arseg_cli.schedule import Decision, FrameKind
from arseg_cli.video.records import DecodedFrame

SIZES = ((64, 96), (48, 64))


class FakeCapture:
    """A stand-in for `capture_cuda_graph`: counts captures and replays; `fail` raises on capture."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.captures = self.replays = 0
        self.fail = fail

    def __call__(self, run: Callable[[], Tensor]) -> tuple[Callable[[], None], Tensor]:
        self.captures += 1
        if self.fail is not None:
            raise self.fail
        scores = run()

        def replay() -> None:
            self.replays += 1
            scores.copy_(run())

        return replay, scores


@pytest.fixture(scope="module")
def model() -> ARSeg:
    return tiny_model()


@pytest.fixture(scope="module")
def step(model: ARSeg) -> FrameStep:
    return FrameStep(model, 0.5)


def _inputs(step: FrameStep, n: int, size: tuple[int, int], seed: int) -> tuple[Tensor, Tensor, np.ndarray]:
    """(x, keyframe feature as GroupStep passes it: batch 1, or expanded with stride 0, flow)."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (n + 1, *size, 3), dtype=np.uint8)
    flow = (3 * rng.standard_normal((n, 2, *size))).astype(np.float32)
    feat = step.key(step.inputs(rgb[0]))[1]
    return step.inputs(rgb[1:]), (feat.expand(n, -1, -1, -1) if n > 1 else feat), flow


def test_replays_equal_the_eager_step_for_full_and_partial_batches_and_two_sizes(step: FrameStep) -> None:
    """Scores equal exactly: full batches, partial batches padded to the captured batch, one frame
    alone, at two frame sizes; one capture per (size, single or batch), replays for the rest."""
    capture = FakeCapture()
    graphed = GraphedNonkey(step, capture=capture)
    calls = [(n, size, seed) for seed, (n, size) in enumerate([(4, SIZES[0]), (4, SIZES[0]), (3, SIZES[0]), (2, SIZES[0]),
                                                                (1, SIZES[0]), (1, SIZES[0]), (4, SIZES[1]), (3, SIZES[1])])]  # fmt: skip
    with torch.inference_mode():
        for n, size, seed in calls:
            x, feat, flow = _inputs(step, n, size, seed)
            eager = step.nonkey(x, feat, flow)
            replayed = graphed(x, feat, flow)
            assert replayed.shape == eager.shape
            assert torch.equal(replayed, eager), (n, size)
    assert capture.captures == 3 and capture.replays == len(calls)
    assert len(graphed.shapes) == 3


def test_any_call_of_the_step_signature_is_graphed_for_instance_one_giving_labels(step: FrameStep) -> None:
    def labels(x: Tensor, feat: Tensor, flow: np.ndarray | Tensor) -> Tensor:
        return step.nonkey(x, feat, flow).argmax(1).to(torch.uint8)

    capture = FakeCapture()
    graphed = nonkey_call(step, True, capture=capture, call=labels)
    with torch.inference_mode():
        for seed, n in enumerate((4, 3, 1)):
            x, feat, flow = _inputs(step, n, SIZES[0], seed)
            replayed = graphed(x, feat, flow)
            assert replayed.dtype == torch.uint8 and torch.equal(replayed, labels(x, feat, flow))
    assert capture.captures == 2 and capture.replays == 3


def test_static_buffers_are_copied_into_not_rebound(step: FrameStep) -> None:
    capture = FakeCapture()
    graphed = GraphedNonkey(step, capture=capture)
    with torch.inference_mode():
        graphed(*_inputs(step, 4, SIZES[0], 0))
        (graph,) = graphed._graphs.values()
        addresses = [t.data_ptr() for t in (graph.x, graph.feat, graph.flow, graph.scores)]
        for seed, n in ((1, 4), (2, 3), (3, 2)):
            x, feat, flow = _inputs(step, n, SIZES[0], seed)
            graphed(x, feat, flow)
            assert torch.equal(graph.x[:n], x) and torch.equal(graph.feat, feat[:1])
            assert torch.equal(graph.flow[:n], torch.from_numpy(flow))
    assert [t.data_ptr() for t in (graph.x, graph.feat, graph.flow, graph.scores)] == addresses
    assert capture.captures == 1


def test_a_larger_batch_than_captured_captures_anew_at_its_size(step: FrameStep) -> None:
    capture = FakeCapture()
    graphed = GraphedNonkey(step, capture=capture)
    with torch.inference_mode():
        for n, seed in ((2, 0), (4, 1), (3, 2)):
            x, feat, flow = _inputs(step, n, SIZES[0], seed)
            assert torch.equal(graphed(x, feat, flow), step.nonkey(x, feat, flow))
    assert capture.captures == 2
    assert [graph.batch for graph in graphed._graphs.values()] == [4]


def test_the_shape_cache_is_bounded_least_recently_used_first(step: FrameStep) -> None:
    capture = FakeCapture()
    graphed = GraphedNonkey(step, capture=capture, max_shapes=2)
    sizes = [(32, 48), (48, 64), (32, 48), (64, 96), (48, 64)]
    with torch.inference_mode():
        for seed, size in enumerate(sizes):
            x, feat, flow = _inputs(step, 2, size, seed)
            assert torch.equal(graphed(x, feat, flow), step.nonkey(x, feat, flow))
            assert len(graphed.shapes) <= 2
    # (48, 64) was dropped for (64, 96), being the least recently used then, and captured again
    assert capture.captures == 4
    assert [key[1][1:] for key in graphed.shapes] == [(64, 96), (48, 64)]


def test_a_capture_error_falls_back_to_the_eager_step_with_one_warning(step: FrameStep, caplog: pytest.LogCaptureFixture) -> None:
    capture = FakeCapture(fail=RuntimeError("CUDA error: operation not permitted when stream is capturing"))
    graphed = GraphedNonkey(step, capture=capture)
    with caplog.at_level(logging.WARNING, logger=graphed_step.__name__), torch.inference_mode():
        for seed, (n, size) in enumerate([(4, SIZES[0]), (3, SIZES[0]), (4, SIZES[1])]):
            x, feat, flow = _inputs(step, n, size, seed)
            assert torch.equal(graphed(x, feat, flow), step.nonkey(x, feat, flow))
    assert capture.captures == 1 and graphed.failed is not None and not graphed.shapes
    assert [r.getMessage() for r in caplog.records] == [
        "CUDA graph capture failed (CUDA error: operation not permitted when stream is capturing); "
        "running the non-keyframe step eagerly"
    ]


def _group(size: tuple[int, int], frames: int, seed: int) -> list[ScheduledFrame]:
    rng = np.random.default_rng(seed)
    group = []
    for index in range(frames):
        rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        frame = DecodedFrame(index=index, pts=index, time_s=None, rgb=rgb, pict_type="P", is_stream_keyframe=index == 0,
                             motion=None)  # fmt: skip
        kind = FrameKind.KEY if index == 0 else FrameKind.NONKEY
        flow = None if index == 0 else (3 * rng.standard_normal((2, *size))).astype(np.float32)
        group.append(ScheduledFrame(frame, Decision(kind, "first" if index == 0 else "", index), flow))
    return group


def test_group_step_with_graphs_gives_the_eager_labels(model: ARSeg, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through GroupStep's hook (`cuda_graphs=True`), with the capture faked and the CUDA check passed:
    groups of 12 (batches 4, 4, 3), of 2 (one frame) and at a second frame size, labels equal exactly."""
    capture = FakeCapture()
    monkeypatch.setattr(graphed_step, "capture_cuda_graph", capture)
    monkeypatch.setattr(graphed_step, "graphs_unavailable", lambda step: None)
    groups = [_group(SIZES[0], 12, 0), _group(SIZES[0], 2, 1), _group(SIZES[0], 12, 2), _group(SIZES[1], 7, 3)]
    with torch.inference_mode():
        graphed = GroupStep(FrameStep(model, 0.5), keep_feature=True, batch=4, cuda_graphs=True)
        eager = GroupStep(FrameStep(model, 0.5), keep_feature=True, batch=4)
        for group in groups:
            for a, b in zip(graphed.labels(group), eager.labels(group), strict=True):
                assert np.array_equal(a, b)
    assert capture.captures == 3  # 64x96 batch, 64x96 single frame, 48x64 batch
    assert capture.replays == 3 + 1 + 3 + 2


def test_a_cpu_model_never_takes_the_graph_path(model: ARSeg, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def no_capture(run: object) -> None:
        raise AssertionError("a CPU model must not be captured")

    monkeypatch.setattr(graphed_step, "capture_cuda_graph", no_capture)
    step = FrameStep(model, 0.5)
    assert graphs_unavailable(step) == "the model runs on cpu, not CUDA"
    with caplog.at_level(logging.WARNING, logger=graphed_step.__name__):
        assert nonkey_call(step, False) == step.nonkey
        assert not caplog.records
        assert nonkey_call(step, True) == step.nonkey
    assert len(caplog.records) == 1 and "runs on cpu, not CUDA" in caplog.records[0].getMessage()
    with torch.inference_mode():
        group_step = GroupStep(step, keep_feature=True, batch=4, cuda_graphs=True)
        assert len(group_step.labels(_group(SIZES[0], 6, 0))) == 6


def test_another_backend_is_not_captured() -> None:
    onnx_like = SimpleNamespace(model=SimpleNamespace(device=torch.device("cuda")), dtype=torch.float32)
    assert graphs_unavailable(onnx_like) == "they need the PyTorch backend"  # type: ignore[arg-type]


def test_the_option_is_opt_in_and_for_the_torch_backend() -> None:
    assert Settings().cuda_graphs is False and SegmentRequest(["a.mp4"]).settings().cuda_graphs is False
    assert SegmentRequest(["a.mp4"], cuda_graphs=True).settings().cuda_graphs is True
    with pytest.raises(OptionsError, match="`cuda_graphs` is for the torch backend"):
        SegmentRequest(["a.mp4"], backend="onnxruntime", onnx="graphs", cuda_graphs=True)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@cuda
@pytest.mark.parametrize("half", [False, True], ids=["float32", "float16"])
def test_real_cuda_graphs_equal_the_eager_step(half: bool) -> None:
    """The real capture on CUDA: the graph's scores equal the eager step's (the same kernels on the same
    inputs; a padded batch to the rounding of another cuDNN algorithm, TF32 included, which torch allows
    for convolutions by default) and labels agree."""
    step = FrameStep(tiny_model().cuda(), 0.5, half=half)
    graphed = nonkey_call(step, True)
    assert isinstance(graphed, GraphedNonkey)
    tolerance = 1e-2 if half else 1e-3
    with torch.inference_mode():
        for seed, n in enumerate((4, 4, 3, 1, 1)):
            x, feat, flow = _inputs(step, n, SIZES[0], seed)
            eager = step.nonkey(x, feat, flow).float()
            replayed = graphed(x, feat, flow).float()
            torch.testing.assert_close(replayed, eager, rtol=tolerance, atol=tolerance)
            assert (replayed.argmax(1) == eager.argmax(1)).float().mean() >= 0.999
    assert graphed.failed is None and len(graphed.shapes) == 2


class _HostDataCalls(torch.overrides.TorchFunctionMode):
    """Records the calls that make a tensor from host data or read one back to the host: on CUDA each
    is a synchronising copy, which a graph capture refuses."""

    HOST = {torch.tensor, torch.Tensor.new_tensor, torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.cpu, torch.Tensor.numpy}

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func in self.HOST or (func is torch.as_tensor and not isinstance(args[0], Tensor)):
            self.calls.append(getattr(func, "__qualname__", repr(func)))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("call", ["nonkey", "nonkey_labels"])
def test_the_captured_step_makes_no_tensor_from_host_data(step: FrameStep, call: str) -> None:
    """What a replay runs (`FrameStep.nonkey`, or `nonkey_labels` as GroupStep graphs it, on the static
    buffers) neither makes tensors from Python or NumPy data nor reads any back (here on the CPU path;
    the CUDA path shares its Python code but for CReFF's kernels)."""
    with torch.inference_mode():
        x, feat, flow = _inputs(step, 3, SIZES[0], 0)
        flow_tensor = torch.from_numpy(flow)
        recorder = _HostDataCalls()
        with recorder:
            getattr(step, call)(x, feat, flow_tensor)
    assert recorder.calls == []
