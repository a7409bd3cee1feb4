"""CReFF: warp conventions, local attention against a per-pixel loop, the tiled kernel, gradients, export."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from arseg_cli.model._local_attention import fused_creff
from arseg_cli.model.creff import CReFF, local_attention, resize_flow, warp_feature

F64 = torch.float64


def random_creff(channels: int, warp: str = "official", seed: int = 0) -> CReFF:
    """A float64 CReFF with weights of order 1 (defaults are small; large ones make peaky softmaxes)."""
    torch.manual_seed(seed)
    creff = CReFF(channels, warp=warp).to(F64).eval()  # type: ignore[arg-type]
    with torch.no_grad():
        for p in creff.parameters():
            p.normal_(0.0, 0.5)
    return creff


def naive_attention(q: Tensor, k: Tensor, v: Tensor, window: int = 7) -> Tensor:
    """The definition, one pixel at a time: neighbours outside the image have key 0 and value 0."""
    n_img, channels, height, width = q.shape
    r = window // 2
    out = torch.zeros_like(q)
    for n, y, x in itertools.product(range(n_img), range(height), range(width)):
        logits, values = [], []
        for dy, dx in itertools.product(range(-r, r + 1), repeat=2):
            yy, xx = y + dy, x + dx
            inside = 0 <= yy < height and 0 <= xx < width
            key = k[n, :, yy, xx] if inside else torch.zeros(channels, dtype=q.dtype)
            values.append(v[n, :, yy, xx] if inside else torch.zeros(channels, dtype=q.dtype))
            logits.append(float((q[n, :, y, x] * key).sum()))
        top = max(logits)
        weights = [math.exp(z - top) for z in logits]
        out[n, :, y, x] = sum(w * val for w, val in zip(weights, values, strict=True)) / sum(weights)
    return out


@torch.no_grad()
def plain_forward(creff: CReFF, lr: Tensor, key: Tensor, flow: Tensor) -> Tensor:
    """CReFF by its definition: warp_feature, depthwise convs, per-pixel attention."""
    up = F.interpolate(lr, size=key.shape[-2:], mode="bilinear", align_corners=True)
    warped = warp_feature(key, flow, creff.warp)  # type: ignore[arg-type]
    q, k, v = creff.lr_query_conv(up), creff.hr_key_conv(warped), creff.hr_value_conv(warped)
    return up + naive_attention(q, k, v, creff.window)


# --- warp ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("image_size", [(6, 9), (12, 18), (13, 7)])
def test_exact_warp_is_identity_at_zero_flow(image_size: tuple[int, int]) -> None:
    feat = torch.randn(2, 3, 6, 9, dtype=F64)
    warped = warp_feature(feat, torch.zeros(2, 2, *image_size, dtype=F64), "exact")
    torch.testing.assert_close(warped, feat, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("fx", "fy"), [(2, -1), (-3, 0), (0, 4), (1, 1)])
def test_exact_warp_moves_content_by_an_integer_flow(fx: int, fy: int) -> None:
    feat = torch.randn(1, 2, 7, 8, dtype=F64)
    flow = torch.tensor([fx, fy], dtype=F64).view(1, 2, 1, 1).expand(1, 2, 7, 8)
    warped = warp_feature(feat, flow, "exact")
    expected = torch.zeros_like(feat)  # backward flow: out(y, x) = feat(y + fy, x + fx), zero outside
    ys, xs = slice(max(0, -fy), min(7, 7 - fy)), slice(max(0, -fx), min(8, 8 - fx))
    expected[..., ys, xs] = feat[..., ys.start + fy : ys.stop + fy, xs.start + fx : xs.stop + fx]
    torch.testing.assert_close(warped, expected, rtol=0, atol=1e-12)


def test_official_warp_halves_edges_and_quarters_corners_at_zero_flow() -> None:
    ones = torch.ones(1, 2, 5, 7, dtype=F64)
    warped = warp_feature(ones, torch.zeros(1, 2, 5, 7, dtype=F64), "official")
    expected = torch.ones(5, 7, dtype=F64)
    expected[0, :] *= 0.5
    expected[-1, :] *= 0.5
    expected[:, 0] *= 0.5
    expected[:, -1] *= 0.5
    torch.testing.assert_close(warped[0, 0], expected, rtol=0, atol=1e-12)
    assert expected[0, 0] == 0.25


def test_official_warp_is_not_the_identity_inside() -> None:
    ramp = torch.arange(7, dtype=F64).view(1, 1, 1, 7).expand(1, 1, 5, 7)
    warped = warp_feature(ramp, torch.zeros(1, 2, 5, 7, dtype=F64), "official")
    # Source column = x * W / (W - 1) - 0.5: the content is shifted by up to half a pixel.
    torch.testing.assert_close(warped[0, 0, 2, 1:-1], torch.arange(1, 6, dtype=F64) * 7 / 6 - 0.5)


def test_flow_is_scaled_per_axis_and_resized_to_the_feature() -> None:
    flow = torch.tensor([8.0, 2.0], dtype=F64).view(1, 2, 1, 1).expand(1, 2, 12, 32).contiguous()
    resized = resize_flow(flow, (6, 8))
    assert resized.shape == (1, 2, 6, 8)
    torch.testing.assert_close(resized[0, 0], torch.full((6, 8), 2.0, dtype=F64))  # 8 * 8/32
    torch.testing.assert_close(resized[0, 1], torch.full((6, 8), 1.0, dtype=F64))  # 2 * 6/12


def test_warp_with_image_larger_than_feature_moves_by_the_scaled_flow() -> None:
    feat = torch.randn(1, 3, 6, 8, dtype=F64)
    flow = torch.tensor([4.0, 2.0], dtype=F64).view(1, 2, 1, 1).expand(1, 2, 12, 16)
    warped = warp_feature(feat, flow, "exact")  # feature flow (2, 1)
    torch.testing.assert_close(warped[..., :5, :6], feat[..., 1:, 2:], rtol=0, atol=1e-12)
    assert warped[..., 5:, :].abs().max() == 0 and warped[..., :, 6:].abs().max() == 0


# --- attention ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(5, 6), (9, 4), (1, 3)])
def test_local_attention_equals_a_per_pixel_loop(size: tuple[int, int]) -> None:
    torch.manual_seed(1)
    q, k, v = (torch.randn(2, 3, *size, dtype=F64) for _ in range(3))
    torch.testing.assert_close(local_attention(q, k, v), naive_attention(q, k, v), rtol=0, atol=1e-10)


@pytest.mark.parametrize("warp", ["official", "exact"])
@pytest.mark.parametrize(("lr_size", "size", "image_size"), [((4, 5), (9, 11), (18, 21)), ((3, 3), (10, 7), (10, 7))])
def test_creff_inference_equals_its_definition(warp: str, lr_size, size, image_size) -> None:
    creff = random_creff(3, warp)
    lr, key = torch.randn(2, 3, *lr_size, dtype=F64), torch.randn(2, 3, *size, dtype=F64)
    flow = 2.5 * torch.randn(2, 2, *image_size, dtype=F64)
    with torch.inference_mode():
        fused = creff(lr, key, flow)
    assert fused.shape == key.shape
    torch.testing.assert_close(fused, plain_forward(creff, lr, key, flow), rtol=0, atol=1e-10)


@pytest.mark.parametrize(("rows", "block", "workers"), [(1, 8, 3), (2, 4, 1), (3, 8, 2), (4, 16, 2), (64, 8, 2)])
@pytest.mark.parametrize("warp", ["official", "exact"])
def test_tiled_kernel_equals_the_plain_path_for_any_tiling(rows: int, block: int, workers: int, warp: str) -> None:
    """Any tile height and block width, tiles shared by 1-3 worker threads (64 rows: one tile per image)."""
    creff = random_creff(4, warp, seed=rows)
    lr, key = torch.randn(2, 4, 6, 5, dtype=F64), torch.randn(2, 4, 11, 13, dtype=F64)
    flow = 3.0 * torch.randn(2, 2, 11, 13, dtype=F64)
    with torch.no_grad():
        up = F.interpolate(lr, size=(11, 13), mode="bilinear", align_corners=True)
        warped = warp_feature(key, flow, warp)  # type: ignore[arg-type]
        q, k, v = creff.lr_query_conv(up), creff.hr_key_conv(warped), creff.hr_value_conv(warped)
        expected = up + local_attention(q, k, v)
        convs = (creff.lr_query_conv, creff.hr_key_conv, creff.hr_value_conv)
        fused = fused_creff(lr, key, flow, convs, warp=warp, window=7, rows=rows, block=block, workers=workers)
    torch.testing.assert_close(fused, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("fast", [True, False])
def test_out_of_image_neighbours_count_with_logit_zero_and_value_zero(fast: bool) -> None:
    """K = 0 and V = 1 in the image: every neighbour weighs 1/49, and those outside bring value 0."""
    if fast:
        creff = CReFF(1, warp="exact").to(F64).eval()
        with torch.no_grad():  # K = 0; V = its bias 1 inside the image (never outside)
            for conv in (creff.lr_query_conv, creff.hr_key_conv, creff.hr_value_conv):
                conv.weight.zero_()
                conv.bias.zero_()
            creff.hr_value_conv.bias.fill_(1.0)
            zeros = torch.zeros(1, 1, 6, 8, dtype=F64)
            attended = creff(zeros, zeros, torch.zeros(1, 2, 6, 8, dtype=F64))  # LR_up = 0: output = attention
    else:
        q, v = torch.randn(1, 1, 6, 8, dtype=F64), torch.ones(1, 1, 6, 8, dtype=F64)
        attended = local_attention(q, torch.zeros_like(q), v)
    in_rows = torch.tensor([min(y, 3) + min(5 - y, 3) + 1 for y in range(6)], dtype=F64)
    in_cols = torch.tensor([min(x, 3) + min(7 - x, 3) + 1 for x in range(8)], dtype=F64)
    torch.testing.assert_close(attended[0, 0], in_rows[:, None] * in_cols[None, :] / 49, rtol=0, atol=1e-12)


# --- module -------------------------------------------------------------------------------------------------
def test_parameters_have_the_official_names_and_shapes() -> None:
    shapes = {name: tuple(p.shape) for name, p in CReFF(64).state_dict().items()}
    assert shapes == {
        f"{conv}.{part}": (64, 1, 3, 3) if part == "weight" else (64,)
        for conv in ("lr_query_conv", "hr_key_conv", "hr_value_conv")
        for part in ("weight", "bias")
    }


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="odd"):
        CReFF(4, window=6)
    with pytest.raises(ValueError, match="warp convention"):
        CReFF(4, warp="bilinear")  # type: ignore[arg-type]


def test_gradients_match_finite_differences() -> None:
    creff = random_creff(2, "official")
    lr = torch.randn(1, 2, 3, 4, dtype=F64, requires_grad=True)
    key = torch.randn(1, 2, 5, 6, dtype=F64, requires_grad=True)
    flow = (0.3 + torch.rand(1, 2, 5, 6, dtype=F64)).requires_grad_()  # away from integer kinks
    assert torch.autograd.gradcheck(creff, (lr, key, flow), eps=1e-6, atol=1e-6)
    params = tuple(creff.parameters())
    assert all(p.grad is None for p in params)
    creff(lr, key, flow).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_eval_forward_is_deterministic_and_leaves_inputs_alone(memory_format: torch.memory_format) -> None:
    creff = CReFF(8).eval()
    lr, key, flow = torch.randn(1, 8, 13, 17), torch.randn(1, 8, 13, 17), torch.randn(1, 2, 26, 34)
    lr, key = lr.contiguous(memory_format=memory_format), key.contiguous(memory_format=memory_format)
    lr_copy = lr.clone()
    with torch.inference_mode():
        first, second = creff(lr, key, flow), creff(lr, key, flow)
    assert torch.equal(first, second)
    assert torch.equal(lr, lr_copy)  # same size as key: the kernel must not add into the caller's tensor


def test_worker_threads_leave_the_callers_thread_count_and_modes_alone(two_torch_threads: None) -> None:
    """Workers run single-threaded and take the caller's inference mode; the caller's settings survive."""
    creff = CReFF(8).eval()
    lr, key, flow = torch.randn(1, 8, 5, 6), torch.randn(1, 8, 12, 10), torch.randn(1, 2, 12, 10)
    convs = (creff.lr_query_conv, creff.hr_key_conv, creff.hr_value_conv)
    flow_feat = resize_flow(flow, (12, 10))
    threads = torch.get_num_threads()
    with torch.inference_mode():
        out = fused_creff(lr, key, flow_feat, convs, warp="official", window=7, rows=2, workers=3)
        expected = fused_creff(lr, key, flow_feat, convs, warp="official", window=7, rows=2, workers=1)
    assert out.is_inference()
    torch.testing.assert_close(out, expected)
    assert torch.get_num_threads() == threads and torch.is_grad_enabled()


@pytest.mark.parametrize("channels_last", [False, True])
def test_float32_fast_path_agrees_with_the_plain_path(channels_last: bool) -> None:
    torch.manual_seed(3)
    creff = CReFF(16).eval()
    lr, key, flow = torch.randn(2, 16, 7, 9), torch.randn(2, 16, 14, 19), 2 * torch.randn(2, 2, 28, 38)
    if channels_last:
        lr, key = lr.contiguous(memory_format=torch.channels_last), key.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        fast = creff(lr, key, flow)
    with torch.enable_grad():
        plain = creff(lr, key, flow.requires_grad_())  # requires grad: the plain path
    torch.testing.assert_close(fast, plain.detach(), rtol=1e-5, atol=1e-5)


def test_mixed_dtypes_take_the_plain_path() -> None:
    creff = CReFF(3).eval()
    lr, key, flow = torch.randn(1, 3, 4, 5, dtype=F64), torch.randn(1, 3, 8, 9), torch.randn(1, 2, 8, 9)
    with torch.no_grad():
        assert not creff._takes_fast_path(lr, key, flow)
        assert creff._takes_fast_path(lr.float(), key, flow.double())  # the flow is cast to the features' dtype


@pytest.mark.parametrize("dynamo", [True, False])
def test_exports_to_onnx(tmp_path, dynamo: bool) -> None:
    """Under no_grad on CPU, so only the tracing checks keep the export off the tiled kernel."""
    onnx = pytest.importorskip("onnx")
    if dynamo:
        pytest.importorskip("onnxscript")
    creff = CReFF(4).eval()
    names = ["lr", "key", "flow"]
    args = (torch.randn(1, 4, 5, 6), torch.randn(1, 4, 10, 12), torch.randn(1, 2, 20, 24))
    path = tmp_path / "creff.onnx"
    with torch.no_grad():
        torch.onnx.export(creff, args, str(path), opset_version=17, input_names=names, dynamo=dynamo)
        expected = creff(*args)
    onnx.checker.check_model(onnx.load(str(path)))
    ort = pytest.importorskip("onnxruntime")
    (out,) = ort.InferenceSession(str(path)).run(None, {n: a.numpy() for n, a in zip(names, args, strict=True)})
    torch.testing.assert_close(torch.from_numpy(out), expected, rtol=1e-4, atol=1e-4)
