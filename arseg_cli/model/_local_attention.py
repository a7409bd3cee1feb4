"""Tiled CPU inference kernel of CReFF: the numbers of `creff.py`'s plain path, in bounded memory.

Why tiles: at camvid-psp18's full resolution (C=64, 720x960) every full-size intermediate is 177 MB, and
on CPU allocating and streaming those costs more than the arithmetic. Here one pass over bands of `rows`
output rows warps, convolves and attends with a working set of a few MB that stays in cache; the only
full-size tensors are the inputs and the output (the upsampled LR feature, to which the attention is
added in place).

Layout inside a tile: pixels by channels (channels last), rows padded by r = window // 2 zero columns on
each side and flattened, so the neighbour (dy, dx) of flat pixel p sits at p + dy * Wp + dx in the key
and value stores: out-of-image neighbours read zeros (logit 0, value 0), as the official model does.
Attention is done with batched matrix products on blocks of `block` consecutive pixels: the block's
queries (block x C) times the keys of one neighbour row (C x (block + 2r)) gives a band matrix whose
diagonals are the logits wanted; the softmax weights are put back on the same band and multiplied by the
values. This computes (block + 2r) / window times the logits strictly needed, but as a few large GEMM calls
instead of window^2 passes over memory.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ROWS = 16  # output rows per tile: at C=64, W=960 the tile's buffers total ~6 MB
BLOCK = 4  # pixels per band block (measured on the 2-core AMD EPYC: 4 is a little faster than 8 at C=64 and C=256)


def fused_creff(
    up: Tensor,
    key_feat: Tensor,
    flow_feat: Tensor,
    convs: tuple[nn.Conv2d, nn.Conv2d, nn.Conv2d],
    *,
    warp: str,
    window: int,
    rows: int = ROWS,
    block: int = BLOCK,
) -> Tensor:
    """CReFF output `up + attention` (N, C, Hf, Wf), written into `up` and returned.

    up:        LR feature upsampled to (Hf, Wf), float32/float64 (channels-last is fastest); modified.
    key_feat:  keyframe feature (N, C, Hf, Wf), same dtype.
    flow_feat: backward flow (N, 2, Hf, Wf) in feature pixels (already scaled and resized).
    convs:     the depthwise 3x3 query, key and value convolutions.
    warp:      'official' or 'exact' (see `creff.warp_feature`).
    """
    for n in range(up.shape[0]):
        _ImageTiles(up[n], key_feat[n], flow_feat[n], warp, window, min(rows, up.shape[-2]), block).run(convs)
    return up


class _ImageTiles:
    """The buffers and steps of one image's tiled pass."""

    def __init__(self, up: Tensor, key: Tensor, flow: Tensor, warp: str, window: int, rows: int, block: int):
        channels, self.height, self.width = up.shape
        self.r, self.window, self.rows, self.block = window // 2, window, rows, block
        self.up = up.permute(1, 2, 0)  # (H, W, C) view: the tile's results are added in place
        self.flow = flow
        self.src = _pixels_by_channels(key)
        self.columns, self.coefficients = _bilinear_sampling(flow, warp)
        most = (rows + 2 * self.r + 2) * self.width  # pixels of the warped rows one tile needs
        self.row_starts = torch.arange(0, 4 * most + 1, 4, dtype=torch.int32)
        r, w = self.r, self.width
        self.padded_width = -(-(w + 2 * r) // block) * block
        wp, new = self.padded_width, lambda *shape: up.new_zeros(shape)
        store_pixels = (rows + 2 * r) * wp + 2 * r  # + 2r: the last block's item runs past the last row
        self.k_store, self.v_store = new(store_pixels, channels), new(store_pixels, channels)
        self.q_store = new(rows * wp, channels)
        self.warped = new(rows + 2 * r + 2, w, channels)  # warped rows for K, V with the 3x3 halo
        blocks = rows * wp // block
        self.logits = up.new_empty(window, blocks, block, block + 2 * r)
        self.weights = new(window, blocks, block, block + 2 * r)  # zero off the band, always
        self.acc = up.new_empty(blocks, block, channels)

    def run(self, convs: tuple[nn.Conv2d, nn.Conv2d, nn.Conv2d]) -> None:
        query, key, value = convs
        tiles = [(y0, min(self.height, y0 + self.rows)) for y0 in range(0, self.height, self.rows)]
        self._queries(*tiles[0], query)
        for (y0, y1), following in zip(tiles, [*tiles[1:], None], strict=True):
            self._keys_values(y0, y1, key, value)
            out = self._attend(y1 - y0)
            if following is not None:  # its Q reads row y1 - 1: before this tile's rows are fused
                self._queries(*following, query)
            self.up[y0:y1].add_(out[:, self.r : self.r + self.width])

    def _store_view(self, store: Tensor) -> Tensor:
        """(rows + 2r, Wp, C) view of a key/value store, row 0 = image row y0 - r."""
        wp, r = self.padded_width, self.r
        return store[r : r + (self.rows + 2 * r) * wp].view(self.rows + 2 * r, wp, -1)

    def _keys_values(self, y0: int, y1: int, key: nn.Conv2d, value: nn.Conv2d) -> None:
        """K, V of image rows [y0 - r, y1 + r) into the stores; store rows outside the image are zero."""
        r, t = self.r, y1 - y0
        lo, hi = max(0, y0 - r - 1), min(self.height, y1 + r + 1)  # warped rows, with the 3x3 halo
        self._warp_rows(lo, hi, self.warped[: hi - lo])
        first, last = max(0, y0 - r), min(self.height, y1 + r)  # rows of K, V inside the image
        top, bottom = first - (y0 - r), last - (y0 - r)  # the same rows in the stores
        for conv, store in ((key, self.k_store), (value, self.v_store)):
            rows = self._store_view(store)
            rows[top:bottom, r : r + self.width] = _conv_rows(conv, self.warped[: hi - lo], first - lo, last - lo)
            rows[:top].zero_()
            rows[bottom : t + 2 * r].zero_()

    def _queries(self, y0: int, y1: int, query: nn.Conv2d) -> None:
        """Q of image rows [y0, y1) from the (not yet fused) LR_up rows around them."""
        lo, hi = max(0, y0 - 1), min(self.height, y1 + 1)
        q_rows = self.q_store.view(self.rows, self.padded_width, -1)
        q_rows[: y1 - y0, self.r : self.r + self.width] = _conv_rows(query, self.up[lo:hi], y0 - lo, y1 - lo)

    def _warp_rows(self, lo: int, hi: int, out: Tensor) -> None:
        """Rows [lo, hi) of the warped keyframe feature -> out (hi - lo, W, C): rows of the sampling
        matrix times the source pixels, one MKL sparse product."""
        pixels, first = (hi - lo) * self.width, lo * self.width
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
            rows = torch.sparse_csr_tensor(
                self.row_starts[: pixels + 1],
                self.columns[4 * first : 4 * (first + pixels)],
                self.coefficients[4 * first : 4 * (first + pixels)],
                size=(pixels, self.src.shape[0]),
                check_invariants=False,
            )
            torch.mm(rows, self.src, out=out.view(pixels, -1))

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


def _bilinear_sampling(flow: Tensor, warp: str) -> tuple[Tensor, Tensor]:
    """The warp as a sparse matrix in CSR form with 4 entries per output pixel (row-major, H*W rows):
    (column = source pixel y * W + x, int32; coefficient = bilinear weight), both (4 * H * W,).

    Source coordinate = scale * (pixel + flow) + offset is grid_sample's unnormalisation of the official
    2v/(L-1) - 1 grid (align_corners False for 'official', True for 'exact'). Corners outside the image
    get weight 0 and a clamped (valid) column, which is grid_sample's zero padding; a row may then hold
    a column twice or out of order, which the product (a sum over a row's entries) does not mind.
    """
    _, h, w = flow.shape
    scale = [(n if warp == "official" else n - 1) / max(n - 1, 1) for n in (w, h)]
    offset = -0.5 if warp == "official" else 0.0
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device)
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device).unsqueeze(1)
    # Clamping keeps far-away samples outside the image (weight 0) and their indices small.
    sx = (scale[0] * (xs + flow[0]) + offset).clamp_(-2.0, w + 1.0)
    sy = (scale[1] * (ys + flow[1]) + offset).clamp_(-2.0, h + 1.0)
    x0, y0 = sx.floor(), sy.floor()
    fx, fy = sx - x0, sy - y0
    columns, coefficients = [], []
    for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xc, yc = x0 + dx, y0 + dy
        inside = (xc >= 0) & (xc <= w - 1) & (yc >= 0) & (yc <= h - 1)
        columns.append((yc.clamp(0, h - 1) * w + xc.clamp(0, w - 1)).to(torch.int32))
        coefficients.append(weight * inside)
    return torch.stack(columns, -1).view(-1), torch.stack(coefficients, -1).view(-1)


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
