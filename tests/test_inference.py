"""propagate(): the memory schedule, the explicit state, inputs of every kind, small videos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hmmnlab import ops
from hmmnlab.config import ReadConfig
from hmmnlab.inference import object_labels, propagate, to_frame_tensor


def video(T=13, H=48, W=64, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(T, H, W, 3), dtype=np.uint8)
    labels = np.zeros((H, W), np.uint8)
    labels[4:20, 4:30] = 1
    labels[25:45, 30:60] = 2
    return frames, labels


def test_memory_schedule_is_the_authors(tiny_model):
    frames, labels = video(T=13)
    kept = []
    for r in propagate(tiny_model, frames, labels, mem_every=5):
        kept.append(list(r.memory.frame_ids))
    # after step t the kept frames are the multiples of 5 that are <= t - 1
    assert kept[1] == [0] and kept[5] == [0] and kept[6] == [0, 5] and kept[12] == [0, 5, 10]
    assert kept[11] == [0, 5, 10]


def test_memory_cap_keeps_frame_zero(tiny_model):
    frames, labels = video(T=13)
    read = ReadConfig(mem_every=2, max_memory_frames=3)
    last = None
    for r in propagate(tiny_model, frames, labels, read=read):
        assert len(r.memory.frame_ids) <= 2  # plus frame t-1 when reading
        last = r
    assert last.memory.frame_ids == [0, 10]
    hw = last.memory.keys_r4.shape[-2] * last.memory.keys_r4.shape[-1]
    assert last.memory.track.shape[1] == 2 * hw


def test_inputs_of_every_kind_give_the_same_result(tiny_model):
    frames, labels = video(T=4)
    as_list = [r.probs for r in propagate(tiny_model, list(frames), labels)]
    as_float = [r.probs for r in propagate(tiny_model, frames.astype(np.float32) / 255, labels)]
    lazy = (f for f in frames)
    as_gen = [r.probs for r in propagate(tiny_model, lazy, labels)]
    for a, b, c in zip(as_list, as_float, as_gen, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
        torch.testing.assert_close(a, c, rtol=0, atol=0)


def test_labels_that_skip_numbers(tiny_model):
    frames, labels = video(T=3)
    skipped = np.where(labels == 2, 5, np.where(labels == 1, 2, 0)).astype(np.uint8)
    ref = list(propagate(tiny_model, frames, labels))
    out = list(propagate(tiny_model, frames, skipped))
    assert out[0].object_ids == (2, 5)
    for a, b in zip(ref, out, strict=True):
        torch.testing.assert_close(a.probs, b.probs, rtol=0, atol=0)
        mapping = torch.tensor([0, 2, 5])
        torch.testing.assert_close(mapping[a.labels], b.labels)


def test_tiny_video_clamps_k_with_a_warning(tiny_model):
    frames, labels = video(T=3, H=32, W=32)  # 2 x 2 r4 grid: 4 positions < k = 32
    with pytest.warns(UserWarning, match="top-k at r3: k = 32 but the memory has only 4"):
        results = list(propagate(tiny_model, frames, labels))
    assert all(torch.isfinite(r.probs).all() for r in results)


def test_empty_first_mask_is_refused(tiny_model):
    frames, labels = video(T=2)
    with pytest.raises(ValueError, match="no object"):
        list(propagate(tiny_model, frames, np.zeros_like(labels)))


def test_mask_size_mismatch(tiny_model):
    frames, _ = video(T=2)
    with pytest.raises(ValueError, match="first-frame mask is"):
        list(propagate(tiny_model, frames, np.ones((10, 10), np.uint8)))


def test_object_labels_ignores_void():
    consecutive, ids = object_labels(np.array([[0, 3, 255], [7, 7, 0]]))
    assert ids == (3, 7)
    assert consecutive.tolist() == [[0, 1, 0], [2, 2, 0]]


def test_frame_conversion():
    grey = np.full((5, 6), 255, np.uint8)
    assert to_frame_tensor(grey).shape == (3, 5, 6)
    rgba = np.zeros((5, 6, 4), np.uint8)
    assert to_frame_tensor(rgba).shape == (3, 5, 6)
    with pytest.raises(ValueError, match="expected uint8 or float"):
        to_frame_tensor(np.zeros((5, 6, 3), np.int32))


@pytest.mark.parametrize(
    "size, expected",
    [((100, 140), (2, 2, 6, 6)), ((101, 153), (3, 4, 5, 6)), ((96, 128), (0, 0, 0, 0))],
)
def test_padding_is_the_authors(size, expected):
    assert tuple(ops.padding_for(*size)) == expected
    x = torch.rand(2, *size)
    torch.testing.assert_close(
        ops.unpad(ops.pad(x, ops.padding_for(*size)), ops.padding_for(*size)), x
    )


# --- issue 13: nothing silently wrong ------------------------------------------------------------


def test_nan_pixel_is_refused_naming_the_frame(tiny_model):
    """Item 4: one NaN pixel would spread to every later frame."""
    frames, labels = video(T=4)
    frames = frames.astype(np.float32) / 255
    frames[2, 10, 10, 1] = np.nan
    with pytest.raises(ValueError, match="frame 2: expected finite pixel values, found 1 NaN"):
        list(propagate(tiny_model, frames, labels))


def test_non_finite_probabilities_are_an_error_naming_the_frame(tiny_model):
    """Item 4: NaN from the model (here: weights broken after loading) is not a blank mask."""
    import copy

    frames, labels = video(T=3)
    broken = copy.deepcopy(tiny_model)
    with torch.no_grad():
        broken.decoder.pred2.bias.fill_(float("nan"))
    with pytest.raises(RuntimeError, match="frame 1: the model produced NaN or infinite"):
        list(propagate(broken, frames, labels))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"sigma": float("nan")}, "sigma must be a finite number > 0, got nan"),
        ({"sigma_growth": -1.0}, "sigma_growth must be a finite number >= 0, got -1.0"),
        ({"window": 7.5}, "window must be a positive odd int, got 7.5"),
        ({"topk_r3": 2.5}, "topk_r3 must be an int >= 1, got 2.5"),
        ({"max_memory_frames": 2.5}, "max_memory_frames must be None or an int >= 2"),
        ({"dense_chunk_mib": float("inf")}, "dense_chunk_mib must be a finite number > 0"),
    ],
)
def test_read_config_validates_types_and_finiteness(params, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ReadConfig(**params)


def test_float_frames_in_0_255_are_refused(tiny_model):
    """Item 5: float frames must be in [0, 1]; 0..255 floats would be read as saturated."""
    frames, labels = video(T=3)
    with pytest.raises(
        ValueError, match=r"frame 0: float pixels must lie in \[0, 1\], found 0\.\.255"
    ):
        list(propagate(tiny_model, frames.astype(np.float32), labels))


def test_soft_first_labels_are_refused_not_truncated(tiny_model):
    """Item 5: a 0/0.99 soft mask used to be truncated to 0 ("no object")."""
    frames, labels = video(T=3)
    soft = labels.astype(np.float32) * 0.99
    with pytest.raises(ValueError, match="must be integer values.*0.99.*threshold"):
        list(propagate(tiny_model, frames, soft))
    # integral floats and booleans are fine
    assert object_labels(labels.astype(np.float64))[1] == (1, 2)
    assert object_labels(labels > 0)[1] == (1,)


def test_each_result_keeps_the_memory_of_its_own_frame(tiny_model):
    frames, labels = video(T=12, H=32, W=48)
    results = list(propagate(tiny_model, frames, labels, mem_every=5))
    assert results[3].memory.frame_ids == [0]  # not the final [0, 5, 10]
    assert results[6].memory.frame_ids == [0, 5]
    assert results[-1].memory.frame_ids == [0, 5, 10]
    assert results[3].memory.keys_r4.shape[2] == 1 and results[-1].memory.keys_r4.shape[2] == 3


def test_read_out_reads_subnormal_weights_as_zero():
    """A sharp softmax gives subnormal weights (slow in a CPU matrix product); the read-out reads
    them as zero, leaves normal weights and the caller's tensor alone, and changes R by < 1e-37."""
    torch.manual_seed(0)
    mv = torch.randn(2, 8, 2, 3, 4)  # B x Cv x T x h x w
    logits = torch.randn(2, 24, 12) * 60  # logit gaps beyond 87: subnormal softmax weights
    p = torch.softmax(logits, dim=1)
    tiny = torch.finfo(p.dtype).tiny
    subnormal = (p > 0) & (p < tiny)
    assert subnormal.any()
    original = p.clone()
    flushed = ops.flush_denormals(p)
    assert torch.equal(flushed[~subnormal], p[~subnormal])
    assert not ((flushed > 0) & (flushed < tiny)).any()
    assert torch.equal(p, original)  # the caller's weights keep their subnormals (for top-k)
    exact = torch.bmm(mv.double().reshape(2, 8, -1), p.double()).view(2, 8, 3, 4)
    assert (ops.read_out(mv, p, 3, 4).double() - exact).abs().max() < 1e-5
    assert torch.equal(ops.read_out(mv, p, 3, 4), ops.read_out(mv, flushed, 3, 4))
    half = torch.tensor([1e-6, 1e-3], dtype=torch.float16)
    assert torch.equal(ops.flush_denormals(half), torch.tensor([0.0, 1e-3], dtype=torch.float16))


def every_float32(low: float, high: float) -> torch.Tensor:
    """Every float32 in [low, high] (0 < low < high), as a tensor."""
    bits = np.arange(np.float32(low).view(np.int32), np.float32(high).view(np.int32) + 1)
    return torch.from_numpy(bits.astype(np.int32).view(np.float32))


def test_exp_without_stall_gives_torch_exp_bits_where_it_underflows():
    """Every float32 argument from -80 to -110 (where float32 exp turns subnormal, then 0),
    around the normal floor in pieces that take each path, and beyond: the same bits as
    torch.exp."""
    x = -torch.cat([every_float32(80.0, 110.0), torch.tensor([200.0, 1e30, float("inf")])])
    assert (torch.exp(x) == 0).any() and ((torch.exp(x) > 0) & (torch.exp(x) < 1.2e-38)).any()
    assert torch.equal(ops.exp_without_stall(x), torch.exp(x))
    mixed = torch.linspace(-1.0, -150.0, 21 * 160_000).view(7, -1, 3)  # > 3 pieces, every path
    assert torch.equal(ops.exp_without_stall(mixed), torch.exp(mixed))
    assert torch.equal(
        ops.exp_without_stall(mixed.transpose(0, 2)), torch.exp(mixed).transpose(0, 2)
    )
    few = torch.full((1000,), -1.0)
    few[::100] = -95.0  # under an eighth underflow: torch.exp itself
    assert torch.equal(ops.exp_without_stall(few), torch.exp(few))
    assert torch.isnan(ops.exp_without_stall(torch.tensor([float("nan"), -100.0]))[0])
    half = torch.tensor([-20.0, -5.0], dtype=torch.float16)
    assert torch.equal(ops.exp_without_stall(half), torch.exp(half))


@pytest.mark.parametrize("sigma", [0.5, 3.0])
def test_gaussian_kernel_is_the_formula(sigma):
    """The kernel rows equal exp(-d^2 / (2 sigma^2)) computed with torch.exp, bit for bit, for a
    narrow kernel (mostly underflow) and the authors' width, with one sigma and one per row."""
    h, w = 15, 27
    centres = torch.randint(0, h * w, (2, 3 * h * w), generator=torch.Generator().manual_seed(0))
    y, x = np.divmod(np.arange(h * w), w)
    cy, cx = np.divmod(centres.numpy()[..., None], w)
    squared = torch.from_numpy(((x - cx) ** 2 + (y - cy) ** 2).astype(np.float32))
    assert torch.equal(
        ops.gaussian_kernel(centres, sigma, h, w), torch.exp(-squared / (2 * sigma**2))
    )
    per_row = torch.tensor([sigma * 2, sigma * 1.5, sigma]).repeat_interleave(h * w)
    expected = torch.exp(-squared / (2 * per_row.view(1, -1, 1) ** 2))
    assert torch.equal(ops.gaussian_kernel(centres, per_row, h, w), expected)


def test_window_mask_is_cached_and_equals_a_fresh_one():
    h, w, window = 5, 7, 3
    y, x = np.divmod(np.arange(h * w), w)
    fresh = (np.abs(y[:, None] - y[None, :]) <= 1) & (np.abs(x[:, None] - x[None, :]) <= 1)
    mask = ops.window_mask(h, w, window)
    assert mask.dtype == torch.bool and np.array_equal(mask.numpy(), fresh)
    assert ops.window_mask(h, w, window, device="cpu") is mask  # built once, then shared
    assert ops.window_mask(h, w, 5) is not mask and ops.window_mask(h, w + 1, window) is not mask
    with torch.inference_mode():  # first asked for under inference mode, still usable in training
        first = ops.window_mask(6, 7, 3)
    assert not first.is_inference()
    logits = torch.randn(1, 42, 42, requires_grad=True)
    torch.where(ops.window_mask(6, 7, 3), logits, 0.0).sum().backward()
    assert torch.equal(logits.grad[0].bool(), ops.window_mask(6, 7, 3))


@pytest.mark.parametrize("chunk", [1, 2, 5, 14, 15, 16, 100, None])
def test_chunked_dense_read_equals_the_unchunked_one(chunk):
    torch.manual_seed(0)
    mk, mv, qk = torch.randn(2, 8, 2, 3, 5), torch.randn(2, 6, 2, 3, 5), torch.randn(2, 8, 3, 5)
    p = torch.softmax(ops.affinity(mk, qk), dim=1)  # B x THW x HW, in one piece
    torch.testing.assert_close(ops.dense_attention(mk, qk, chunk=chunk), p, atol=1e-6, rtol=0)
    whole = ops.read_out(mv, p, 3, 5)
    torch.testing.assert_close(ops.dense_read(mk, mv, qk, chunk=chunk), whole, atol=1e-6, rtol=0)


def test_kernel_softmax_in_float16_gives_no_nan():
    """Sharp float16 logits and a narrow kernel: computed in float16, softmax(S) * G underflows to
    zero in whole columns and the renormalisation gives NaN; computed in float32 it does not."""
    torch.manual_seed(0)
    logits = (torch.randn(1, 40, 8) * 30).half()
    kernel = torch.zeros(1, 40, 8)
    kernel[:, :4] = 1  # the kernel keeps rows the softmax nearly ignores
    kernel = (kernel + 1e-9).half()
    naive = torch.softmax(logits, dim=1) * kernel
    assert torch.isnan(naive / naive.sum(dim=1, keepdim=True)).any()  # the failure being fixed
    p = ops.kernel_softmax(logits, kernel)
    assert p.dtype == torch.float16 and torch.isfinite(p).all()
    exact = ops.kernel_softmax(logits.float(), kernel.float())
    assert torch.allclose(p.float(), exact, atol=1e-3)


@pytest.mark.parametrize("s", [2, 4])
def test_gathering_whole_coarse_cells_equals_gathering_fine_positions(s):
    """The top-k read copies whole coarse cells; it must give exactly the keys and values at the
    fine positions the readable definition names, in the same order."""
    torch.manual_seed(0)
    B, C, T, h, w, k = 2, 5, 3, 4, 6, 7
    x = torch.randn(B, C, T, s * h, s * w)
    indices = torch.randint(0, T * h * w, (B, h * w, k))
    fast = ops.gather_coarse_cells(x, indices, s)
    readable = ops.gather_positions(x, ops.fine_memory_indices(indices, h, w, s))
    assert fast.shape == (B, h * w, k * s * s, C)
    assert torch.equal(fast, readable)


def test_channel_argmax_equals_argmax_over_dim_0_with_ties():
    x = torch.tensor([[[0.2, 0.5]], [[0.2, 0.1]], [[0.6, 0.5]]])  # 3 x 1 x 2, ties in both columns
    assert torch.equal(ops.channel_argmax(x), x.argmax(dim=0))
    assert ops.channel_argmax(x).tolist() == [[2, 0]]
    y = torch.rand(4, 7, 9)
    assert torch.equal(ops.channel_argmax(y), y.argmax(dim=0))
