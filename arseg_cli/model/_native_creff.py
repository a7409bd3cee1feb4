"""CReFF's CPU inference as native code (`_creff_native.c`): the default on the CPU when a build is at hand.

One C call computes a band of output rows whole: the warp and upsampling gathers, the three depthwise
convolutions, the window attention with its softmax and the residual add, reading the features in
place and writing the output once (the PyTorch tiled kernel, `_local_attention.py`, runs a few hundred
operations per tile and materialises their results). Bands are handed to `workers` Python threads
through ctypes, which releases the GIL during the call. Measured in docs/BENCHMARKS.md ("Native CReFF").
`native_labels` is the same library's upsample-and-argmax of class scores (`SegNet.labels`).

Where the build comes from: `_native_build.py`. Without one, or after `use_native_creff(False)`, both
return None and the callers take PyTorch: CReFF's tiled kernel (the same numbers up to float rounding,
slower), interpolate + argmax.
"""

from __future__ import annotations

import ctypes
from concurrent.futures import ThreadPoolExecutor
from queue import Empty, SimpleQueue

import torch
from torch import Tensor, nn

from arseg_cli.model._local_attention import _keep_freed_memory, _pixels_by_channels
from arseg_cli.model._native_build import ImageArgs, library

MAX_WINDOW = 15
#: Fewest output rows per band: a band also computes K and V on window // 2 + 1 rows either side.
MIN_BAND_ROWS = 8
#: Bands per worker thread: two let a worker that finished early take over part of another's rows.
BANDS_PER_WORKER = 2
_state = {"enabled": True}


def use_native_creff(enabled: bool = True) -> None:
    """Let CPU inference use the native CReFF when a build is at hand (the default), or not."""
    _state["enabled"] = enabled


def native_creff(
    lr_feat: Tensor,
    key_feat: Tensor,
    flow_feat: Tensor,
    convs: tuple[nn.Conv2d, nn.Conv2d, nn.Conv2d],
    *,
    warp: str,
    window: int,
    rows: int | None = None,
    workers: int | None = None,
) -> Tensor | None:
    """CReFF output LR_up + attention (N, C, Hf, Wf), channels-last, as `_local_attention.fused_creff`
    computes it (same arguments); None when the native code cannot run it here (module docstring;
    also other dtypes than float32/float64, devices other than the CPU, windows above 15).

    rows: output rows per band (default: `_default_rows`); workers: Python threads taking bands from a
    queue (default: torch's thread count; never more than there are bands).
    """
    dtype = key_feat.dtype
    tensors = (lr_feat, key_feat, flow_feat, *(p for conv in convs for p in conv.parameters()))
    if not _state["enabled"] or dtype not in (torch.float32, torch.float64) or window > MAX_WINDOW or window % 2 == 0:
        return None
    if any(t.device.type != "cpu" or t.dtype != dtype for t in tensors if t is not flow_feat):
        return None
    lib = library()
    if lib is None:
        return None
    _keep_freed_memory()  # as the PyTorch kernel does; the networks' large activations gain from it too
    out = torch.empty_like(key_feat, memory_format=torch.channels_last)
    channels, height, width = out.shape[1:]
    band = _band_function(lib, dtype, channels)
    weights = torch.stack([conv.weight.detach().reshape(channels, 9).t() for conv in convs]).contiguous()
    biases = torch.stack([conv.bias.detach() for conv in convs]).contiguous()  # type: ignore[union-attr]
    flow_feat = flow_feat.to(dtype).contiguous()
    threads = workers or torch.get_num_threads()
    rows = min(height, rows or _default_rows(height, threads, images=out.shape[0]))
    bands: SimpleQueue[tuple[ImageArgs, int, int]] = SimpleQueue()
    keep = [weights, biases, flow_feat]  # alive until the C calls are done
    for n in range(out.shape[0]):
        lr, key = _pixels_by_channels(lr_feat[n]), _pixels_by_channels(key_feat[n])
        keep += [lr, key]
        image = ImageArgs(lr.data_ptr(), key.data_ptr(), flow_feat[n].data_ptr(), weights.data_ptr(), biases.data_ptr(),
                           out[n].data_ptr(), lr_feat.shape[-2], lr_feat.shape[-1], height, width, channels, window,
                           int(warp == "exact"))  # fmt: skip
        for y0 in range(0, height, rows):
            bands.put((image, y0, min(height, y0 + rows)))

    scratch_values = lib.arseg_creff_scratch_size(ctypes.byref(image), rows)

    def work() -> None:
        scratch = _scratch(scratch_values, dtype)
        try:
            while True:
                try:
                    image, y0, y1 = bands.get_nowait()
                except Empty:
                    return
                if band(ctypes.byref(image), y0, y1, scratch.data_ptr()) != 0:
                    raise ValueError(f"native CReFF: window {window} with {channels} channels is not supported")
        finally:
            _spare_scratch.put(scratch)

    workers = max(1, min(threads, bands.qsize()))
    if workers == 1:
        work()
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for done in [pool.submit(work) for _ in range(workers)]:
                done.result()
    del keep
    return out


def native_labels(scores: Tensor, size: tuple[int, int], *, align_corners: bool, scale_factor: float | None = None) -> Tensor | None:
    """(N, H, W) uint8: argmax over classes of `scores` (N, K, h, w) float32 upsampled bilinearly to
    `size` (as `interpolate(scores, size or scale_factor, align_corners)`), without materialising the
    upsampled scores; None when the native code cannot do it here (other dtype or device, K > 256)."""
    if not _state["enabled"] or scores.dtype != torch.float32 or scores.device.type != "cpu" or scores.shape[1] > 256:
        return None
    lib = library()
    if lib is None:
        return None
    labels = torch.empty(scores.shape[0], *size, dtype=torch.uint8)
    inverse = 1.0 / scale_factor if scale_factor else 0.0
    for n in range(scores.shape[0]):
        image = scores[n]
        status = lib.arseg_scores_to_labels_f32(image.data_ptr(), *image.shape, *image.stride(), *size, int(align_corners),
                                                inverse, inverse, labels[n].data_ptr())  # fmt: skip
        if status != 0:
            return None
    return labels


def _default_rows(height: int, workers: int, *, images: int = 1) -> int:
    """Rows per band: BANDS_PER_WORKER bands per worker over the batch's images (a band recomputes
    window // 2 + 1 rows either side of it, so a batch with enough images takes them whole), but not
    under MIN_BAND_ROWS."""
    bands_per_image = -(-BANDS_PER_WORKER * workers // images)
    return max(1, min(height, max(MIN_BAND_ROWS, -(-height // bands_per_image))))


def _band_function(lib: ctypes.CDLL, dtype: torch.dtype, channels: int):  # type: ignore[no-untyped-def]
    if dtype == torch.float64:
        return lib.arseg_creff_band_f64
    isa = lib.arseg_creff_isa(channels)
    return lambda image, y0, y1, scratch: lib.arseg_creff_band_f32(image, y0, y1, scratch, isa)


#: Scratch buffers of finished calls, kept for the next (a band's few MB would otherwise be page-faulted
#: in anew on every frame); at most one per worker thread that ran at the same time.
_spare_scratch: SimpleQueue[Tensor] = SimpleQueue()


def _scratch(values: int, dtype: torch.dtype) -> Tensor:
    """A spare buffer of at least `values` elements of `dtype` (raw bytes reinterpreted), else a new one."""
    nbytes = values * dtype.itemsize
    try:
        spare = _spare_scratch.get_nowait()
    except Empty:
        spare = None
    if spare is not None and spare.numel() >= nbytes:
        return spare
    return torch.empty(nbytes, dtype=torch.uint8)
