"""Read variants and traces: properties that must hold between them (each can fail)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hmmnlab.config import ReadConfig
from hmmnlab.hooks import hook_points
from hmmnlab.inference import propagate
from hmmnlab.inside.trace import run_with_cache, topk_coordinates
from hmmnlab.model import HMMN
from hmmnlab.model.reads import FINE_READS, KERNELS, read_variant, register_kernel


@pytest.fixture
def model(tiny_model):
    return tiny_model


@pytest.fixture(scope="module")
def clip():
    """8 frames of 64 x 80 (a 4 x 5 r4 grid): a textured square moving over noise, two objects."""
    rng = np.random.default_rng(0)
    background = rng.integers(0, 256, size=(64, 80, 3), dtype=np.uint8)
    patch = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    frames, labels = [], np.zeros((64, 80), np.uint8)
    for t in range(8):
        frame = background.copy()
        frame[20 : 20 + 16, 8 + 4 * t : 24 + 4 * t] = patch
        frames.append(frame)
    labels[20:36, 8:24] = 1
    labels[44:60, 50:70] = 2
    return np.stack(frames), labels


def probs(model, clip, read, **kwargs):
    return torch.stack([r.probs for r in propagate(model, *clip, read=read, **kwargs)])


def test_registries_match_the_config_choices():
    choices = {f.name: f for f in dataclasses.fields(ReadConfig)}
    assert set(KERNELS) >= {"hmmn", "hmmn-paper", "kmn", "stm"}
    assert set(FINE_READS) >= {"topk", "dense", "none"}
    assert "variant" in choices and "fine" in choices
    for name in KERNELS:
        assert read_variant(name).variant == name
    with pytest.raises(ValueError, match="already registered"):
        register_kernel("hmmn")(lambda *a: None)
    with pytest.raises(ValueError, match="unknown read variant"):
        read_variant("xmem")
    with pytest.raises(ValueError, match="unknown read parameters"):
        read_variant("kmn", sigmaa=3)


def test_a_variant_is_one_line_and_a_flat_dict():
    config = read_variant("kmn", fine="dense")
    row = config.to_dict()
    assert row["variant"] == "kmn" and row["sigma"] == 7.0 and row["fine"] == "dense"
    assert all(not isinstance(v, dict | list) for v in row.values())
    assert read_variant("kmn", sigma=3).sigma == 3


def test_topk_covering_everything_equals_dense(model, clip):
    everything = read_variant("hmmn", topk_r3=10**6, topk_r2=10**6)
    with pytest.warns(UserWarning, match="top-k"):
        topk = probs(model, clip, everything)
    dense = probs(model, clip, read_variant("hmmn", fine="dense"))
    torch.testing.assert_close(topk, dense, atol=1e-5, rtol=0)
    # and a small k is a different read
    small = probs(model, clip, read_variant("hmmn", topk_r3=4, topk_r2=1))
    assert (small - dense).abs().max() > 1e-3


@pytest.mark.parametrize("variant", ["hmmn", "hmmn-paper", "kmn"])
def test_huge_sigma_kernel_reads_equal_stm(model, clip, variant):
    stm = probs(model, clip, read_variant("stm"))
    wide = probs(model, clip, read_variant(variant, sigma=1e6))
    torch.testing.assert_close(wide, stm, atol=1e-5, rtol=0)
    narrow = probs(model, clip, read_variant(variant, sigma=0.5))
    assert (narrow - stm).abs().max() > 1e-3


def test_traced_kernel_of_frame_t_minus_1_peaks_at_the_window_argmax(model, clip):
    _, cache = run_with_cache(model, *clip, frame=7)
    flow, kernel = cache["r4.flow"], cache["r4.kernel"]
    hw = flow.shape[1]
    last_rows = kernel[:, -hw:]  # B x HW x HW
    assert torch.equal(last_rows.argmax(dim=2), flow)
    assert torch.allclose(last_rows.amax(dim=2), torch.ones(()))
    # the sigmas grow for older frames: memory [0, 5, 6] -> 3 * (1 + 0.5 * [2, 1, 0])
    torch.testing.assert_close(cache["r4.sigmas"], torch.tensor([6.0, 4.5, 3.0]))


def test_tracing_does_not_change_the_outputs(model, clip):
    plain = probs(model, clip, ReadConfig())
    traced = probs(model, clip, ReadConfig(), trace=True)
    assert torch.equal(plain, traced)


def test_hmmn_paper_differs_from_hmmn_only_in_propagated_kernels(model, clip):
    """Same inputs (frame 2: memory frames 0 and 1): the affinity logits and the kernel of frame t-1
    agree, the kernel of the older frame 0 does not."""
    _, ours = run_with_cache(model, *clip, frame=2, read=read_variant("hmmn"))
    _, paper = run_with_cache(model, *clip, frame=2, read=read_variant("hmmn-paper"))
    hw = ours["r4.flow"].shape[1]
    assert torch.equal(ours["r4.affinity_logits"], paper["r4.affinity_logits"])
    assert torch.equal(ours["r4.kernel"][:, hw:], paper["r4.kernel"][:, hw:])
    assert not torch.equal(ours["r4.kernel"][:, :hw], paper["r4.kernel"][:, :hw])
    # frame 1 reads only frame 0 (no propagation): identical everywhere
    first = [run_with_cache(model, *clip, frame=1, read=read_variant(v))[1] for v in KERNELS]
    assert torch.equal(first[0]["output.probs"], first[1]["output.probs"])


def test_no_fine_read_gives_zero_readouts_and_another_result(model, clip):
    _, cache = run_with_cache(model, *clip, frame=3, read=read_variant("hmmn", fine="none"))
    assert not cache["r3.readout"].any() and not cache["r2.readout"].any()
    assert "r3.topk_indices" not in cache
    none = probs(model, clip, read_variant("hmmn", fine="none"))
    assert (none - probs(model, clip, ReadConfig())).abs().max() > 1e-4


def test_dense_read_runs_in_chunks_and_is_refused_only_below_one_query(model, clip):
    """The clip's r2 grid is 16 x 20 (320 positions): with 2 objects and 2 memory frames a query
    column is 3 x 2 x 640 floats = 15 KiB, so 0.05 MiB reads 3 queries at a time at r2 (and 13 at
    r3); the result is the unchunked one. Below one column the read is refused, saying why."""
    whole = probs(model, clip, read_variant("hmmn", fine="dense"))
    chunked = probs(model, clip, read_variant("hmmn", fine="dense", dense_chunk_mib=0.05))
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"dense read at r3 needs about .* MiB for even one query"):
        probs(model, clip, read_variant("hmmn", fine="dense", dense_chunk_mib=1e-6))


def test_a_traced_dense_read_keeps_its_whole_attention_and_result(model, clip):
    read = read_variant("hmmn", fine="dense", dense_chunk_mib=0.05)
    result, cache = run_with_cache(model, *clip, frame=6, read=read)
    _, whole = run_with_cache(model, *clip, frame=6, read=read_variant("hmmn", fine="dense"))
    B, hw = 2, 16 * 20
    assert cache["r2.attention"].shape == (B, 2 * hw, hw)  # frames 0 and 5 at r2
    torch.testing.assert_close(cache["r2.attention"].sum(dim=1), torch.ones(B, hw))
    for name in ("r3.attention", "r2.attention", "r2.readout", "output.probs"):
        torch.testing.assert_close(cache[name], whole[name], atol=1e-6, rtol=0)
    plain = probs(model, clip, read)[6]
    torch.testing.assert_close(result.probs, plain, atol=1e-6, rtol=0)


def test_guidance_from_all_frames(model, clip):
    result, cache = run_with_cache(model, *clip, frame=7, read=read_variant("hmmn", guidance="all"))
    assert result.memory_frames == (0, 5, 6)
    hw = cache["r4.flow"].shape[1]
    assert cache["r3.topk_indices"].max() >= 2 * hw  # rows of frame 6 are the third block
    assert cache["r3.attention"].shape[-1] == 32 * 4


def test_topk_coordinates():
    indices = torch.tensor([[[0, 7, 20 + 6]]])  # h, w = 4, 5; rows of frames (0, 9)
    coords = topk_coordinates(indices, [0, 9], 4, 5)
    assert coords.tolist() == [[[[0, 0, 0], [0, 1, 2], [9, 1, 1]]]]


def test_every_hook_point_is_documented(tiny_config):
    import hmmnlab.inside.trace

    doc = hmmnlab.inside.trace.__doc__
    for name in hook_points(HMMN(tiny_config)):
        head = name.rsplit(".", 1)[0]
        assert name in doc or (head in doc), name
