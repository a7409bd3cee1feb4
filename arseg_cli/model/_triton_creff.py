"""CReFF on CUDA with two Triton kernels: the warp, and the 7x7 local attention fused with its softmax
and the residual add.

Why: the tiled kernel of `_local_attention.py`, run as one tile per image on a GPU, is some thirty
launches of small operations (gathers, band GEMMs, softmax, copies): measured 16.7 ms for camvid-psp18's
64x720x960 fusion on an H100, more than its HR network. Here a CReFF call is ~8 launches for a whole batch:
the flow resize, the warp (one kernel), the LR upsampling, the three depthwise convolutions (cuDNN) and one
attention kernel, which reads each pixel's 49 keys and values once and writes the output once.

The attention kernel computes, per pixel p of a program's block of `block` pixels of one row,
out = up + sum_k softmax_k(<q_p, k_k>) v_k over the window's neighbours, with an online softmax (running
maximum and sum, as in flash attention) so that logits are never stored. Out-of-image neighbours are
masked loads of zero: logit 0 and value 0, which still take part in the softmax, as in the official model.
Arithmetic is float32 for float16/float32 inputs (float64 for float64): the float16 model gets logits
summed in float32, which is no less accurate than the plain path.

Triton is imported here only: `available()` says whether it can be. Under `TRITON_INTERPRET=1`
(set before this module is imported) the kernels run on CPU tensors through Triton's interpreter, which
is how the tests check them without a GPU.
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

try:
    import triton
    import triton.language as tl
except Exception:  # noqa: BLE001 - missing, or broken beside this torch: the tiled kernel serves
    triton = None

#: Elements (pixels x padded channels) of one program's blocks, and its warps: 8 values per thread keep
#: the attention kernel at ~95 registers with no spills on sm_90 (cuobjdump of Triton 3.9's cubin; 16
#: per thread took ~180 registers, 32 spilled). One stage: the neighbours' loads are not pipelined.
BLOCK_VALUES = 2048
WARPS = 8
STAGES = 1


@functools.cache
def available() -> bool:
    """True when Triton imports and can run on this process's CUDA devices (or its interpreter is on)."""
    if triton is None:
        return False
    return interpreted() or torch.cuda.is_available()


def interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def triton_creff(
    lr_feat: Tensor,
    key_feat: Tensor,
    flow_feat: Tensor,
    convs: tuple[nn.Conv2d, nn.Conv2d, nn.Conv2d],
    *,
    warp: str,
    window: int,
) -> Tensor:
    """CReFF output LR_up + attention (N, C, Hf, Wf), channels-last, in the inputs' dtype.

    lr_feat (N, C, h, w) and key_feat (N, C, Hf, Wf): one dtype (float16, float32 or float64);
    flow_feat (N, 2, Hf, Wf): backward flow in feature pixels (already scaled and resized), float32 at
    least; convs: the depthwise 3x3 query, key and value convolutions; warp: 'official' or 'exact'.
    """
    size = (key_feat.shape[-2], key_feat.shape[-1])
    up = lr_feat
    if tuple(lr_feat.shape[-2:]) != size:
        up = F.interpolate(lr_feat, size=size, mode="bilinear", align_corners=True)
    warped = warp_rows(key_feat, flow_feat, warp)
    query, key, value = convs
    return window_attention(query(up), key(warped), value(warped), up, window)


def warp_rows(feat: Tensor, flow_feat: Tensor, warp: str) -> Tensor:
    """`creff.warp_feature` of feat (N, C, H, W) by a flow already in feature pixels (N, 2, H, W):
    bilinear, zero padding, sampling coordinates in float32 at least. Returns channels-last.

    A keyframe feature shared by the batch (batch 1, or expanded to N with stride 0, as for the frames
    of one keyframe group) is read in place for every image, not copied N times.
    """
    images = flow_feat.shape[0]
    shared = feat.shape[0] == 1 or feat.stride(0) == 0
    source = (feat[:1] if shared else feat).contiguous(memory_format=torch.channels_last)
    flow = flow_feat.to(torch.promote_types(feat.dtype, torch.float32)).contiguous()
    _, channels, height, width = source.shape
    out = torch.empty((images, channels, height, width), dtype=source.dtype, device=source.device, memory_format=torch.channels_last)
    block, padded, grid = _launch_shape(images, channels, height, width, None)
    _warp_kernel[grid](
        source, flow, out, height, width, channels, 0 if shared else channels * height * width,
        OFFICIAL=warp == "official", BLOCK=block, CHANNELS=padded, num_warps=WARPS, num_stages=STAGES,
    )  # fmt: skip
    return out


def window_attention(
    q: Tensor, k: Tensor, v: Tensor, up: Tensor, window: int, *, block: int | None = None, warps: int = WARPS
) -> Tensor:
    """up + sum_k softmax_k(<q, k_k>) v_k over each pixel's window x window neighbours; all (N, C, H, W)
    of one shape and dtype. Out-of-image neighbours have logit 0 and value 0. Returns channels-last.
    block (pixels per program, a power of 2) and warps: launch settings, for benchmarks to explore."""
    q, k, v, up = (t.contiguous(memory_format=torch.channels_last) for t in (q, k, v, up))
    out = torch.empty_like(q, memory_format=torch.channels_last)
    n, channels, height, width = q.shape
    block, padded, grid = _launch_shape(n, channels, height, width, block)
    _attention_kernel[grid](
        q, k, v, up, out, height, width, channels,
        WINDOW=window, BLOCK=block, CHANNELS=padded, FP64=q.dtype == torch.float64, num_warps=warps, num_stages=STAGES,
    )  # fmt: skip
    return out


def _launch_shape(n: int, channels: int, height: int, width: int, block: int | None) -> tuple[int, int, tuple[int, int]]:
    """Pixels per program (a power of 2), channels padded to a power of 2, and the grid: one program per
    block of one image row."""
    padded = triton.next_power_of_2(channels)
    block = triton.next_power_of_2(min(width, block or max(1, BLOCK_VALUES // padded)))
    return block, padded, (n * height, triton.cdiv(width, block))


if triton is not None:

    @triton.jit
    def _source(coordinate, flow, size, OFFICIAL: tl.constexpr):
        """grid_sample's unnormalisation of the official grid 2 (x + flow) / (size - 1) - 1: with
        align_corners False ('official') (x + flow) * size / (size - 1) - 1/2, with True ('exact')
        (x + flow) * (size - 1) / (size - 1); a size-1 axis is normalised by 1."""
        position = coordinate + flow
        denominator = tl.maximum(size - 1, 1).to(flow.dtype)
        if OFFICIAL:
            return position * size.to(flow.dtype) / denominator - 0.5
        return position * (size - 1).to(flow.dtype) / denominator

    @triton.jit
    def _corner(base, cx, cy, weight, in_row, cs, in_channels_2d, height, width, channels):
        """weight * feat[cy, cx, :] per pixel, zero where (cx, cy) is outside the image."""
        inside = in_row & (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
        at = (cy * width + cx).to(tl.int64) * channels
        values = tl.load(base + at[:, None] + cs[None, :], mask=inside[:, None] & in_channels_2d, other=0.0)
        return weight[:, None] * values.to(weight.dtype)

    @triton.jit
    def _warp_kernel(feat, flow, out, height, width, channels, feat_image_stride,
                     OFFICIAL: tl.constexpr, BLOCK: tl.constexpr, CHANNELS: tl.constexpr):  # fmt: skip
        """One program: BLOCK pixels of one output row, all channels. feat/out channels-last (N, H, W, C),
        feat's images `feat_image_stride` apart (0: one image for all), flow contiguous (N, 2, H, W) in
        feature pixels; bilinear with zero padding."""
        row = tl.program_id(0).to(tl.int64)
        image, y = row // height, row % height
        xs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        cs = tl.arange(0, CHANNELS)
        in_row, in_channels = xs < width, cs < channels
        pixels = height * width
        flow_at = flow + image * 2 * pixels + y * width + xs
        fx = tl.load(flow_at, mask=in_row, other=0.0)
        fy = tl.load(flow_at + pixels, mask=in_row, other=0.0)
        sx = _source(xs.to(fx.dtype), fx, width, OFFICIAL)
        sy = _source(y.to(fy.dtype), fy, height, OFFICIAL)
        left, top = tl.floor(sx), tl.floor(sy)
        right_weight, bottom_weight = sx - left, sy - top
        x0, y0 = left.to(tl.int32), top.to(tl.int32)
        base = feat + image * feat_image_stride
        in_channels_2d = in_channels[None, :]
        acc = _corner(base, x0, y0, (1.0 - right_weight) * (1.0 - bottom_weight), in_row, cs, in_channels_2d, height, width, channels)
        acc += _corner(base, x0 + 1, y0, right_weight * (1.0 - bottom_weight), in_row, cs, in_channels_2d, height, width, channels)
        acc += _corner(base, x0, y0 + 1, (1.0 - right_weight) * bottom_weight, in_row, cs, in_channels_2d, height, width, channels)
        acc += _corner(base, x0 + 1, y0 + 1, right_weight * bottom_weight, in_row, cs, in_channels_2d, height, width, channels)
        target = out + (row * width + xs)[:, None] * channels + cs[None, :]
        tl.store(target, acc.to(out.dtype.element_ty), mask=in_row[:, None] & in_channels_2d)

    @triton.jit
    def _attention_kernel(q, k, v, up, out, height, width, channels,
                          WINDOW: tl.constexpr, BLOCK: tl.constexpr, CHANNELS: tl.constexpr, FP64: tl.constexpr):  # fmt: skip
        """One program: BLOCK pixels of one row, all channels; every tensor channels-last (N, H, W, C).
        Online softmax over the WINDOW x WINDOW neighbours; float64 inputs (FP64) compute in float64,
        others in float32. Offsets are int32 from each image's base (an image has < 2^31 values)."""
        row = tl.program_id(0)
        image, y = row // height, row % height
        image_base = image.to(tl.int64) * height * width * channels
        q, k, v, up, out = q + image_base, k + image_base, v + image_base, up + image_base, out + image_base
        xs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        cs = tl.arange(0, CHANNELS)
        in_row, in_channels = xs < width, cs < channels
        here = (y * width + xs)[:, None] * channels + cs[None, :]
        mask = in_row[:, None] & in_channels[None, :]
        if FP64:
            query = tl.load(q + here, mask=mask, other=0.0).to(tl.float64)
        else:
            query = tl.load(q + here, mask=mask, other=0.0).to(tl.float32)
        best = tl.full((BLOCK,), float("-inf"), dtype=query.dtype)
        total = tl.zeros((BLOCK,), dtype=query.dtype)
        acc = tl.zeros((BLOCK, CHANNELS), dtype=query.dtype)
        # one loop over the neighbours, not unrolled: unrolled, the compiler hoists their loads and spills
        for neighbour_index in range(WINDOW * WINDOW):
            dy, dx = neighbour_index // WINDOW - WINDOW // 2, neighbour_index % WINDOW - WINDOW // 2
            # a row of the block's size, not a scalar: Triton's interpreter turns scalar & vector masks into int32
            ny = tl.zeros((BLOCK,), dtype=tl.int32) + (y + dy)
            nx = xs + dx
            inside = in_row & (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
            at = (ny * width + nx)[:, None] * channels + cs[None, :]
            neighbour = inside[:, None] & in_channels[None, :]
            keys = tl.load(k + at, mask=neighbour, other=0.0).to(query.dtype)
            logit = tl.sum(query * keys, axis=1)
            new_best = tl.maximum(best, logit)
            rescale = tl.exp(best - new_best)
            weight = tl.exp(logit - new_best)
            values = tl.load(v + at, mask=neighbour, other=0.0).to(query.dtype)
            acc = acc * rescale[:, None] + weight[:, None] * values
            total = total * rescale + weight
            best = new_best
        residual = tl.load(up + here, mask=mask, other=0.0).to(query.dtype)
        result = residual + acc / total[:, None]
        tl.store(out + here, result.to(out.dtype.element_ty), mask=mask)
