"""Tiled inference kernel of CReFF: the numbers of `creff.py`'s plain path, in bounded memory (CPU),
and in a few dozen kernel launches instead of a few hundred (CUDA: one tile per image).

Why tiles: at camvid-psp18's full resolution (C=64, 720x960) every full-size intermediate is 177 MB, and
on CPU allocating and streaming those costs more than the arithmetic. Here one pass over bands of `rows`
output rows upsamples, warps, convolves and attends with a working set of a few MB; the only full-size
tensors are the inputs and the output (measured peak extra at that size: ~0.3 GB with channels-last
inputs, the 177 MB output included, against ~2.1 GB for the plain path and ~8.7 GB for an unfold).

Per tile: LR_up and warped rows are bilinear resamplings, each one fused gather of 4 weighted source
pixels per output pixel (`embedding_bag`: ~5x faster here than grid_sample or a sparse product); the
depthwise 3x3 convolutions run on those rows with a one-row halo.
Attention layout: pixels by channels, rows padded by r = window // 2 zero columns on each side and
flattened, so the neighbour (dy, dx) of flat pixel p sits at p + dy * Wp + dx in the key and value
stores: out-of-image neighbours read zeros (logit 0, value 0), as the official model does. Blocks of
`block` consecutive pixels go through batched matrix products: the block's queries (block x C) times the
keys of one neighbour row (C x (block + 2r)) is a band matrix whose diagonals are the logits wanted; the
softmax weights are put back on the same band and multiplied by the values. That computes
(block + 2r) / window times the products strictly needed, as 2 x window GEMM calls per tile instead of
window^2 passes over memory. Only one tile's logits exist at a time, so no online softmax is needed.
With `compiled=True` (a CReFF's `compiled_attention`, the CLI's `--compile`) a tile's attention is instead the plain
definition compiled by inductor from the same stores (`_compiled_attention.py`: faster, opt-in).

Threads: a tile is a few hundred small operations (GEMMs of 4 x C x 10, 3x3 depthwise convolutions of a
few rows), which intra-op threads split poorly: every one ends on a barrier, and on a shared 2-core CPU a
descheduled OpenMP thread stalls each of them (measured 5-10x slower than one thread under load). So
tiles are independent jobs: `workers` Python threads (torch's thread count by default; torch releases
the GIL inside its ops) each take tiles from a queue and run them single-threaded with their own buffers.
"""

from __future__ import annotations

import ctypes
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from queue import Empty, SimpleQueue

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from arseg_cli.model import _compiled_attention

#: Values (rows x W x C) of one tile: output rows per tile = TILE_VALUES // (W * C), e.g. 16 rows for
#: C=64 at W=960 and 32 for C=256 at W=120. The three constants below were chosen by measurement
#: (docs/BENCHMARKS.md, "CReFF kernel constants").
TILE_VALUES = 1 << 20
#: Fewest default-sized tiles per thread that make worker threads the default: with few tiles, two
#: running at once are each slower than one alone.
TILES_PER_WORKER = 8
BLOCK = 4  # pixels per band block


def fused_creff(
    lr_feat: Tensor,
    key_feat: Tensor,
    flow_feat: Tensor,
    convs: tuple[nn.Conv2d, nn.Conv2d, nn.Conv2d],
    *,
    warp: str,
    window: int,
    rows: int | None = None,
    block: int = BLOCK,
    workers: int | None = None,
    compiled: bool = False,
) -> Tensor:
    """CReFF output LR_up + attention (N, C, Hf, Wf), channels-last, of one dtype (float32 or float64).

    lr_feat:   LR feature (N, C, h, w); upsampled here (bilinear, align_corners=True), tile by tile.
    key_feat:  keyframe feature (N, C, Hf, Wf). Channels-last inputs are read in place; others are
               transposed once.
    flow_feat: backward flow (N, 2, Hf, Wf) in feature pixels (already scaled and resized).
    convs:     the depthwise 3x3 query, key and value convolutions.
    warp:      'official' or 'exact' (see `creff.warp_feature`).
    rows:      output rows per tile (default from TILE_VALUES); block: pixels per band block.
    workers:   Python threads, each taking tiles from a queue and running them single-threaded. Default:
               torch's intra-op thread count when there are at least TILES_PER_WORKER default-sized tiles
               per thread, else 1 (one thread running tiles with torch's intra-op threads).
    compiled:  on the CPU, run each tile's attention compiled by inductor (`_compiled_attention.py`).
    """
    out = torch.empty_like(key_feat, memory_format=torch.channels_last)
    channels, height, width = out.shape[1:]
    if out.device.type != "cpu":
        # A GPU runs each operation across the whole image: one tile per image, one thread. Tiles there
        # would only multiply kernel launches (the plain path's 49 shifted products are launch- and
        # bandwidth-bound there: measured slower than the HR network at camvid sizes on an H100).
        workers, rows = 1, rows or height
    else:
        _keep_freed_memory()
    if workers is None:
        threads, default_tiles = torch.get_num_threads(), out.shape[0] * -(-out[0].numel() // TILE_VALUES)
        workers = threads if default_tiles >= TILES_PER_WORKER * threads else 1
    workers = max(1, workers)
    rows = min(height, rows or _default_rows(height, width * channels, workers))
    tiles: SimpleQueue[tuple[_Image, int, int]] = SimpleQueue()
    for n in range(out.shape[0]):
        lr, key = _pixels_by_channels(lr_feat[n]), _pixels_by_channels(key_feat[n])
        image = _Image(lr, lr_feat.shape[-2:], key, flow_feat[n], out[n], warp, window)
        for y0 in range(0, height, rows):
            tiles.put((image, y0, min(height, y0 + rows)))
    workers = min(workers, tiles.qsize())
    attention = None
    if compiled and out.device.type == "cpu":
        threads_per_worker = 1 if workers > 1 else torch.get_num_threads()
        attention = _compiled_attention.attention_for(threads_per_worker, window, out.dtype, channels)
    if workers == 1:
        with torch.no_grad():  # as in the workers: the compiled attention is compiled for this grad mode
            _Tiles(image, rows, block, attention).run(convs, tiles)
        return out
    threads, inference = torch.get_num_threads(), torch.is_inference_mode_enabled()

    def work() -> None:
        torch.set_num_threads(1)  # this thread's OpenMP teams only (the pool's threads are new)
        with torch.inference_mode(inference), torch.no_grad():  # grad modes are per thread: the caller's
            _Tiles(image, rows, block, attention).run(convs, tiles)

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for done in [pool.submit(work) for _ in range(workers)]:
                done.result()
    finally:
        torch.set_num_threads(threads)  # MKL's thread count is process-wide: put it back
    return out


@functools.cache
def _keep_freed_memory() -> None:
    """Once per process, on glibc: keep freed memory for reuse instead of giving it back to the OS.

    Each tile allocates a few MB of temporaries (gathers and convolutions have no out= variant); with
    glibc's defaults those are unmapped or trimmed when freed and page-faulted in again by the next tile:
    ~0.2 s of system time per 720x960 call (~15% of it). A fixed 32 MB mmap threshold (the most glibc
    accepts) and a 256 MB trim threshold keep them in the heap. Settings the user made through the
    environment are left alone.
    """
    if any(name in os.environ for name in ("GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - raises AttributeError off glibc
    except (AttributeError, OSError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    libc.mallopt(m_mmap_threshold, 32 << 20)
    libc.mallopt(m_trim_threshold, 256 << 20)


def _default_rows(height: int, row_values: int, workers: int) -> int:
    """Rows per tile: at most TILE_VALUES values per tile, and a number of tiles that the workers share
    evenly (a multiple of `workers`)."""
    tiles = -(-height * row_values // TILE_VALUES)
    tiles = min(height, -(-tiles // workers) * workers)
    return -(-height // tiles)


class _Image:
    """One image's inputs, read by every worker: LR and keyframe features as (pixels, C), the
    upsampling and warping coordinates, and the (H, W, C) view of its output."""

    def __init__(
        self, lr: Tensor, lr_size: torch.Size, key: Tensor, flow: Tensor, out: Tensor, warp: str, window: int
    ) -> None:
        self.channels, self.height, self.width = out.shape
        self.lr, self.key, self.window = lr, key, window
        self.out = out.permute(1, 2, 0)  # (H, W, C) view of a channels-last output
        # Sampling coordinates in float32 at least: in float16 a pixel coordinate near 100 is only
        # good to 1/16 px (measured: twice the plain path's error for a float16 model on CUDA).
        coordinates = torch.promote_types(out.dtype, torch.float32)
        self.upsampling = _Resize(lr_size, out.shape[1:], coordinates, out.device)
        self.warping = _Warp(flow.to(coordinates), warp)


class _Tiles:
    """One worker's buffers, and the steps of one tile; every image of a batch has the same sizes.
    `compiled`: the compiled attention (`_compiled_attention`) to run instead of the band GEMMs."""

    def __init__(self, image: _Image, rows: int, block: int, compiled: _compiled_attention.Attention | None = None) -> None:
        self.height, self.width, self.image = image.height, image.width, image
        channels, window = image.channels, image.window
        self.r, self.window, self.rows, self.block = window // 2, window, rows, block
        r, w = self.r, self.width
        self.padded_width = -(-(w + 2 * r) // block) * block
        wp, new = self.padded_width, lambda *shape: image.out.new_zeros(shape)
        store_pixels = (rows + 2 * r) * wp + 2 * r  # + 2r: the last block's item runs past the last row
        self.k_store, self.v_store = new(store_pixels, channels), new(store_pixels, channels)
        self.q_store = new(rows * wp, channels)
        self.compiled = compiled
        if compiled is not None:
            return
        blocks = rows * wp // block
        self.logits = image.out.new_empty(window, blocks, block, block + 2 * r)
        self.weights = new(window, blocks, block, block + 2 * r)  # zero off the band, always
        self.acc = image.out.new_empty(blocks, block, channels)

    def run(self, convs: tuple[nn.Conv2d, nn.Conv2d, nn.Conv2d], tiles: SimpleQueue[tuple[_Image, int, int]]) -> None:
        """Takes tiles (image, first row, end row) from the queue until it is empty."""
        query, key, value = convs
        while True:
            try:
                self.image, y0, y1 = tiles.get_nowait()
            except Empty:
                return
            self._keys_values(y0, y1, key, value)
            up = self._queries(y0, y1, query)
            attention = self._attention(y1 - y0)[:, self.r : self.r + self.width]
            torch.add(up, attention, out=self.image.out[y0:y1])

    def _store_view(self, store: Tensor) -> Tensor:
        """(rows + 2r, Wp, C) view of a key/value store, row 0 = image row y0 - r."""
        wp, r = self.padded_width, self.r
        return store[r : r + (self.rows + 2 * r) * wp].view(self.rows + 2 * r, wp, -1)

    def _keys_values(self, y0: int, y1: int, key: nn.Conv2d, value: nn.Conv2d) -> None:
        """K, V of image rows [y0 - r, y1 + r) into the stores; store rows outside the image are zero."""
        r, t = self.r, y1 - y0
        lo, hi = max(0, y0 - r - 1), min(self.height, y1 + r + 1)  # warped rows, with the 3x3 halo
        warped = self._sample(self.image.warping, self.image.key, lo, hi)
        first, last = max(0, y0 - r), min(self.height, y1 + r)  # rows of K, V inside the image
        top, bottom = first - (y0 - r), last - (y0 - r)  # the same rows in the stores
        for conv, store in ((key, self.k_store), (value, self.v_store)):
            rows = self._store_view(store)
            rows[top:bottom, r : r + self.width] = _conv_rows(conv, warped, first - lo, last - lo)
            rows[:top].zero_()
            rows[bottom : t + 2 * r].zero_()

    def _queries(self, y0: int, y1: int, query: nn.Conv2d) -> Tensor:
        """Q of image rows [y0, y1) into the query store; returns those rows of LR_up, (y1 - y0, W, C)."""
        lo, hi = max(0, y0 - 1), min(self.height, y1 + 1)  # with the 3x3 halo
        up = self._sample(self.image.upsampling, self.image.lr, lo, hi)
        q_rows = self.q_store.view(self.rows, self.padded_width, -1)
        q_rows[: y1 - y0, self.r : self.r + self.width] = _conv_rows(query, up, y0 - lo, y1 - lo)
        return up[y0 - lo : y1 - lo]

    def _sample(self, coordinates: _Resize | _Warp, src: Tensor, lo: int, hi: int) -> Tensor:
        """Rows [lo, hi) of a bilinear resampling of `src` (pixels, C) -> (hi - lo, W, C): per output pixel,
        the weighted sum of 4 source pixels, as one fused gather (embedding_bag, mode 'sum')."""
        columns, coefficients = _bilinear_sampling(*coordinates.rows(lo, hi), coordinates.src_size)
        rows = F.embedding_bag(columns.view(-1, 4), src, per_sample_weights=coefficients.view(-1, 4).to(src.dtype), mode="sum")
        return rows.view(hi - lo, self.width, -1)

    def _attention(self, t: int) -> Tensor:
        """The attention of the tile's t rows -> (t, Wp, C); padding columns are junk."""
        if self.compiled is None:
            return self._attend(t)
        n = t * self.padded_width
        return self.compiled(self.q_store[:n], self.k_store, self.v_store, n, self.padded_width).view(t, self.padded_width, -1)

    def _attend(self, t: int) -> Tensor:
        """sum_k softmax_k(<q, k_k>) v_k for the tile's t rows -> (t, Wp, C); padding columns are junk."""
        wp, r, b, win = self.padded_width, self.r, self.block, self.window
        blocks = t * wp // b
        channels = self.q_store.shape[-1]
        queries = self.q_store[: t * wp].view(blocks, b, channels)
        for dy in range(win):
            torch.bmm(queries, self._items(self.k_store, dy, blocks).transpose(1, 2), out=self.logits[dy, :blocks])
        logits = self._band(self.logits, blocks).permute(1, 2, 0, 3).reshape(blocks * b, win * win)
        weights = logits.softmax(dim=-1).view(blocks, b, win, win).permute(2, 0, 1, 3)
        self._band(self.weights, blocks).copy_(weights)
        acc = self.acc[:blocks]
        torch.bmm(self.weights[0, :blocks], self._items(self.v_store, 0, blocks), out=acc)
        for dy in range(1, win):
            acc.baddbmm_(self.weights[dy, :blocks], self._items(self.v_store, dy, blocks))
        return acc.view(t, wp, channels)

    def _items(self, store: Tensor, dy: int, blocks: int) -> Tensor:
        """(blocks, block + 2r, C) overlapping views: for block j, the key/value pixels that are the
        neighbours in window row dy of its pixels (item row m = neighbour dx of block pixel m - dx)."""
        channels = store.shape[-1]
        size = (blocks, self.block + 2 * self.r, channels)
        return store.as_strided(size, (self.block * channels, channels, 1), dy * self.padded_width * channels)

    def _band(self, buf: Tensor, blocks: int) -> Tensor:
        """(window, blocks, block, window) view of the diagonals of a (window, *, block, block + 2r) buffer:
        [dy, j, i, dx] is entry (i, i + dx) of block j's band matrix for window row dy."""
        step = self.block + 2 * self.r + 1
        return buf.as_strided((self.window, blocks, self.block, self.window), (buf.stride(0), buf.stride(1), step, 1))


class _Warp:
    """Source coordinates of the warp by backward flow (2, H, W) in feature pixels, rows on demand.

    scale * (pixel + flow) + offset is grid_sample's unnormalisation of the official 2v/(L-1) - 1 grid
    (align_corners False for 'official', True for 'exact'); a size-1 axis is normalised by 1.
    """

    def __init__(self, flow: Tensor, warp: str) -> None:
        _, h, w = flow.shape
        self.flow, self.src_size = flow, (h, w)
        self.scale = [(n if warp == "official" else n - 1) / max(n - 1, 1) for n in (w, h)]
        self.offset = -0.5 if warp == "official" else 0.0
        self.xs = torch.arange(w, dtype=flow.dtype, device=flow.device)

    def rows(self, lo: int, hi: int) -> tuple[Tensor, Tensor]:
        """(x, y) source coordinates of output rows [lo, hi), each (hi - lo, W)."""
        ys = torch.arange(lo, hi, dtype=self.flow.dtype, device=self.flow.device).unsqueeze(1)
        flow = self.flow[:, lo:hi]
        return self.scale[0] * (self.xs + flow[0]) + self.offset, self.scale[1] * (ys + flow[1]) + self.offset


class _Resize:
    """Source coordinates of a bilinear align_corners=True resize from src_size to size, rows on demand."""

    def __init__(self, src_size: torch.Size, size: torch.Size, dtype: torch.dtype, device: torch.device) -> None:
        self.src_size = (h, w) = src_size
        height, width = size
        self.xs = torch.arange(width, dtype=dtype, device=device) * ((w - 1) / (width - 1) if width > 1 else 0.0)
        self.ys = torch.arange(height, dtype=dtype, device=device) * ((h - 1) / (height - 1) if height > 1 else 0.0)

    def rows(self, lo: int, hi: int) -> tuple[Tensor, Tensor]:
        """x (1, W) and y (hi - lo, 1) source coordinates of output rows [lo, hi)."""
        return self.xs.unsqueeze(0), self.ys[lo:hi].unsqueeze(1)


def _bilinear_sampling(sx: Tensor, sy: Tensor, src_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Bilinear, zero-padded sampling of an (h, w) source at coordinates sx, sy (broadcast to (R, W)):
    for each output pixel its 4 source pixels (y * w + x, int32) and their weights, both (R, W, 4).

    Corners outside the source get weight 0 and a clamped (valid) index, which is grid_sample's zero
    padding.
    """
    h, w = src_size
    (x0, x1), (wx0, wx1) = _axis_corners(sx, w)
    (y0, y1), (wy0, wy1) = _axis_corners(sy, h)
    shape = (*torch.broadcast_shapes(sx.shape, sy.shape), 4)
    columns = torch.empty(shape, dtype=torch.int32, device=sx.device)
    coefficients = torch.empty(shape, dtype=sx.dtype, device=sx.device)
    corners = ((y0, wy0, x0, wx0), (y0, wy0, x1, wx1), (y1, wy1, x0, wx0), (y1, wy1, x1, wx1))
    for k, (yc, wy, xc, wx) in enumerate(corners):
        torch.add(xc, yc, alpha=w, out=columns[..., k])
        torch.mul(wy, wx, out=coefficients[..., k])
    return columns, coefficients


def _axis_corners(coord: Tensor, size: int) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Along one axis of length `size`: the two neighbouring indices of each coordinate, clamped into
    the axis (int32), and their linear weights, zero for an index outside it."""
    coord = coord.clamp(-2.0, size + 1.0)  # far outside stays outside, with small indices
    low = coord.floor()
    frac = coord - low
    indices, weights = [], []
    for index, weight in ((low, 1 - frac), (low + 1, frac)):
        indices.append(index.clamp(0, size - 1).to(torch.int32))
        weights.append(weight * ((index >= 0) & (index <= size - 1)))
    return (indices[0], indices[1]), (weights[0], weights[1])


def _pixels_by_channels(feat: Tensor) -> Tensor:
    """(C, H, W) -> (H * W, C) contiguous: a view for channels-last input, else one transposing copy."""
    channels = feat.shape[0]
    hwc = feat.permute(1, 2, 0)
    if hwc.is_contiguous():
        return hwc.reshape(-1, channels)
    return feat.new_empty(hwc.shape[0] * hwc.shape[1], channels).copy_(feat.reshape(channels, -1).t())


def _conv_rows(conv: nn.Conv2d, rows: Tensor, first: int, last: int) -> Tensor:
    """Rows [first, last) of `conv` (3x3, zero padding 1) applied to (R, W, C) image rows -> (last - first, W, C).

    Output rows need their neighbours in `rows` unless they are on the image border, where the conv's
    zero padding is the image's: so a tile passes its rows with a one-row halo, clipped to the image.
    """
    # unsqueeze before permute: a batch stride of R*W*C makes this a channels-last tensor that oneDNN
    # recognises (the other order gives stride C, which falls back to a ~10x slower path).
    x = rows.unsqueeze(0).permute(0, 3, 1, 2)
    return F.conv2d(x, conv.weight, conv.bias, padding=1, groups=conv.groups)[0, :, first:last].permute(1, 2, 0)
