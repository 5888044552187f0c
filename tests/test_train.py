"""Training: clips, loss, a few CPU steps that overfit one clip, checkpoint/resume, BatchNorm
mode."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hmmnlab.config import ReadConfig
from hmmnlab.data.synthetic import VideoSpec, generate_video
from hmmnlab.inference import propagate
from hmmnlab.train.clips import (
    ArrayVideo,
    ClipConfig,
    deformed_clip,
    sample_indices,
    shift_content,
    skip_schedule,
    video_clip,
)
from hmmnlab.train.loop import (
    BEST_FILE,
    LOG_FILE,
    READ_SHORTHANDS,
    STATE_FILE,
    TrainConfig,
    build_model,
    encoder_batchnorms,
    forward_clip,
    forward_clips,
    frozen_modules,
    parameter_groups,
    parse_overrides,
    set_train_mode,
    train,
    train_step,
)
from hmmnlab.train.losses import aggregated_cross_entropy, clip_loss
from hmmnlab.weights import load_model, save_checkpoint

SIZE = 64


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: several threads on a busy 2-core machine are many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_video(num_objects: int, width: int, num_frames: int = 3) -> ArrayVideo:
    spec = VideoSpec(
        "tiny",
        seed=7,
        num_frames=num_frames,
        height=SIZE,
        width=width,
        num_objects=num_objects,
        object_size=0.3,
        occlusion=False,
    )
    frames, labels = generate_video(spec)
    return ArrayVideo("tiny", frames, labels)


@pytest.fixture(scope="module")
def tiny_video() -> ArrayVideo:
    """A 3-frame 64 x 64 synthetic video of one object: with crop 64, skip 0 and no augmentation,
    every training clip is this video."""
    return make_video(1, SIZE)


@pytest.fixture(scope="module")
def two_objects() -> ArrayVideo:
    return make_video(2, 96)


def tiny_config(**changes) -> TrainConfig:
    """The same clip every step (skip 0 on a 3-frame video, no augmentation), small model."""
    base = dict(
        steps=30,
        batch_size=1,
        lr=1e-3,
        warmup_steps=1,
        lr_min_ratio=1.0,
        crop_size=SIZE,
        scale_jitter=0.0,
        flip=False,
        jitter=0.0,
        max_objects=1,
        skip_start=0,
        skip_end=0,
        bn_calibration=2,
        log_every=5,
        ckpt_every=5,
        val_every=1000,
        seed=3,
    )
    read = {"topk_r3": 8, **{k: changes.pop(k) for k in READ_SHORTHANDS if k in changes}}
    return TrainConfig(**{**base, **changes}, read=ReadConfig(**read))


SMALL_MODEL = dict(
    key_dim_r4=16,
    value_dim_r4=32,
    key_dim_r3=8,
    value_dim_r3=16,
    key_dim_r2=8,
    value_dim_r2=8,
    decoder_dim=16,
)


def test_sample_indices_and_curriculum():
    rng = np.random.default_rng(0)
    for _ in range(200):
        idx = sample_indices(10, 4, 3, rng)
        gaps = np.diff(idx)
        assert idx[0] >= 0 and idx[-1] < 10 and (gaps >= 1).all() and (gaps <= 5).all()
    assert sample_indices(3, 20, 3, rng) == [0, 1, 2]
    assert skip_schedule(0, start=2, end=12, ramp_steps=100) == 2
    assert skip_schedule(50, start=2, end=12, ramp_steps=100) == 7
    assert skip_schedule(500, start=2, end=12, ramp_steps=100) == 12


def test_clips_have_renumbered_objects(two_objects):
    rng = np.random.default_rng(1)
    config = ClipConfig(crop_size=48, max_objects=3, min_object_pixels=20)
    for make in (
        lambda: video_clip(two_objects, 2, config, rng),
        lambda: deformed_clip(two_objects, config, rng),
    ):
        clip = make()
        assert clip.frames.shape == (3, 3, 48, 48) and clip.labels.shape == (3, 48, 48)
        assert 0.0 <= clip.frames.min() and clip.frames.max() <= 1.0
        present = set(torch.unique(clip.labels[0]).tolist()) - {0}
        assert present == set(range(1, clip.num_objects + 1))
        assert int(clip.labels.max()) <= clip.num_objects


def test_loss_is_cross_entropy_of_softmax():
    logits = torch.randn(3, 4, 5)
    labels = torch.randint(0, 3, (4, 5))
    expected = -torch.log_softmax(logits, 0).gather(0, labels[None]).mean()
    assert torch.allclose(aggregated_cross_entropy(logits, labels), expected)
    with pytest.raises(ValueError, match="labels"):
        aggregated_cross_entropy(logits, labels + 3)


def test_batchnorm_stays_in_eval_mode():
    model = set_train_mode(build_model(TrainConfig(), SMALL_MODEL))
    assert model.training and model.decoder.training
    bns = encoder_batchnorms(model)
    assert len(bns) > 10 and not any(bn.training for bn in bns)


def test_forward_clip_matches_inference_shapes(tiny_video):
    config = tiny_config()
    model = set_train_mode(build_model(config, SMALL_MODEL))
    clip = video_clip(tiny_video, 0, config.clip_config(), np.random.default_rng(0))
    logits = forward_clip(model, clip, config.read_config(), torch.device("cpu"))
    assert [tuple(x.shape) for x in logits] == [(clip.num_objects + 1, SIZE, SIZE)] * 2
    logits[-1].sum().backward()  # frame 2's output reaches the memory encoder through frame 1
    assert model.memory_encoder.conv1_m.weight.grad.abs().sum() > 0


def test_longer_clips_predict_every_later_frame():
    config = tiny_config(clip_frames=4, mem_every=1)
    model = set_train_mode(build_model(config, SMALL_MODEL))
    video = make_video(1, SIZE, num_frames=4)
    clip = video_clip(video, 0, config.clip_config(), np.random.default_rng(0))
    assert clip.frames.shape[0] == 4
    logits = forward_clip(model, clip, config.read_config(), torch.device("cpu"))
    assert len(logits) == 3


def test_init_starts_from_a_checkpoint(tiny_video, tmp_path):
    config = tiny_config(steps=1, lr=1e-30, grad_clip=None)
    source = build_model(config, SMALL_MODEL)
    save_checkpoint(source, tmp_path / "init.pth")

    def weights_after_one_step(init, out: str) -> dict:
        """Train one step of lr 1e-30 from ``init`` (no calibration): the weights it ends with."""
        train(
            config,
            [tiny_video],
            tmp_path / out,
            model_overrides=SMALL_MODEL,
            init=init,
            progress=False,
        )
        return torch.load(tmp_path / out / STATE_FILE, weights_only=False)["model"]

    # from an hmmnlab checkpoint, then from that run's full-precision state.pth
    for init, out in [(tmp_path / "init.pth", "run"), (tmp_path / "run" / STATE_FILE, "again")]:
        trained = weights_after_one_step(init, out)
        for key, value in source.state_dict().items():
            assert torch.allclose(trained[key].float(), value.float(), atol=1e-6), (out, key)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        weights_after_one_step(tmp_path / "junk.pth", "junk")
    save_checkpoint(build_model(config, {**SMALL_MODEL, "decoder_dim": 8}), tmp_path / "other.pth")
    with pytest.raises(ValueError, match="does not fit the model"):
        weights_after_one_step(tmp_path / "other.pth", "other")


def test_overfits_one_clip_and_resumes(tiny_video, tmp_path):
    torch.manual_seed(0)
    config = tiny_config()
    result = train(
        config,
        [tiny_video],
        tmp_path / "a",
        model_overrides=SMALL_MODEL,
        val_sets={"tiny": [tiny_video]},
        progress=False,
    )
    first, last = np.mean(result.losses[:5]), np.mean(result.losses[-5:])
    assert last < 0.3 * first, f"loss did not go down: first steps {first:.4f}, last {last:.4f}"
    assert (tmp_path / "a" / LOG_FILE).read_text().splitlines()[0].startswith("step,")
    assert (tmp_path / "a" / STATE_FILE).is_file()
    model = load_model(tmp_path / "a" / BEST_FILE)  # float16 on disk, float32 model
    assert next(model.parameters()).dtype == torch.float32

    # 6 steps in one go == 3 steps, then resume for 3 more
    config = tiny_config(steps=6, ckpt_every=100)
    straight = train(
        config, [tiny_video], tmp_path / "b", model_overrides=SMALL_MODEL, progress=False
    )
    train(
        config,
        [tiny_video],
        tmp_path / "c",
        model_overrides=SMALL_MODEL,
        progress=False,
        stop_after=3,
    )
    resumed = train(
        config,
        [tiny_video],
        tmp_path / "c",
        model_overrides=SMALL_MODEL,
        progress=False,
        resume=True,
    )
    assert resumed.step == 6
    assert (tmp_path / "b" / BEST_FILE).is_file()  # no validation: the final weights
    assert resumed.losses == pytest.approx(straight.losses[3:], rel=1e-5)
    a = torch.load(tmp_path / "b" / STATE_FILE, weights_only=False)["model"]
    b = torch.load(tmp_path / "c" / STATE_FILE, weights_only=False)["model"]
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key


def test_parse_overrides():
    config, model = parse_overrides(
        ["steps=12", "lr=3e-4", "grad_clip=none", "flip=false", "model.decoder_dim=32"]
    )
    assert (config.steps, config.lr, config.grad_clip, config.flip) == (12, 3e-4, None, False)
    assert model == {"decoder_dim": 32}
    with pytest.raises(ValueError, match="unknown training setting"):
        parse_overrides(["stepz=1"])


def _two_clips(config: TrainConfig) -> list:
    rng = np.random.default_rng(1)
    clip_config = dataclasses.replace(config.clip_config(), max_objects=2)
    return [video_clip(make_video(n, SIZE), 0, clip_config, rng) for n in (2, 1)]


def test_training_forward_without_gradients_is_propagate(tiny_video):
    """The training forward and inference run the same per-frame step: same logits."""
    config = tiny_config(clip_frames=3, mem_every=1)
    model = build_model(config, SMALL_MODEL).eval()
    clip = video_clip(tiny_video, 0, config.clip_config(), np.random.default_rng(0))
    read = config.read_config()
    with torch.no_grad():
        logits = forward_clip(model, clip, read, torch.device("cpu"))
    frames = [f.permute(1, 2, 0).numpy() for f in clip.frames]
    results = list(propagate(model, frames, clip.labels[0].numpy(), read=read))
    for t in (1, 2):
        torch.testing.assert_close(logits[t - 1], results[t].logits, rtol=0, atol=1e-5)


def test_batched_clips_equal_clips_one_at_a_time():
    config = tiny_config(clip_frames=3, mem_every=1)
    model = build_model(config, SMALL_MODEL).double().eval()
    clips = _two_clips(config)
    for clip in clips:
        clip.frames = clip.frames.double()
    read = config.read_config()
    with torch.no_grad():
        batched = forward_clips(model, clips, read, torch.device("cpu"))
        alone = [forward_clip(model, clip, read, torch.device("cpu")) for clip in clips]
    assert [len(x) for x in batched] == [2, 2]
    assert batched[0][0].shape[0] == 3 and batched[1][0].shape[0] == 2  # K + 1 per clip
    for ours, single in zip(batched, alone, strict=True):
        for a, b in zip(ours, single, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    other = dataclasses.replace(clips[1], frames=clips[1].frames[:2])
    with pytest.raises(ValueError, match="same frames and size"):
        forward_clips(model, [clips[0], other], read, torch.device("cpu"))


def test_micro_batches_give_the_batch_gradient():
    """One forward of the whole batch or one clip at a time: the same gradient."""
    config = tiny_config(clip_frames=3, mem_every=1)
    clips = _two_clips(config)
    grads = []
    for chunk in (2, 1):
        torch.manual_seed(0)
        model = set_train_mode(build_model(config, SMALL_MODEL).double())
        for clip in clips:
            clip.frames = clip.frames.double()
        loss = 0
        for first in range(0, 2, chunk):
            group = clips[first : first + chunk]
            outs = forward_clips(model, group, config.read_config(), torch.device("cpu"))
            part = sum(clip_loss(o, c.labels) for c, o in zip(group, outs, strict=True)) / 2
            part.backward()
            loss += part.item()
        grads.append(model.decoder.pred2.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-12)


def test_train_step_returns_the_loss_and_the_gradient_norm():
    """train_step's micro-batches give the whole batch's step; it reports the loss and the norm of
    the gradient it stepped with (clipped or not)."""
    config = tiny_config(clip_frames=3, mem_every=1)
    clips = _two_clips(config)
    for clip in clips:
        clip.frames = clip.frames.double()
    results, weights = [], []
    for micro_batch, grad_clip in ((None, None), (1, None), (None, 1e-3)):
        torch.manual_seed(0)
        model = set_train_mode(build_model(config, SMALL_MODEL).double())
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        result = train_step(
            model, optimizer, clips, config.read_config(), device=torch.device("cpu"),
            micro_batch=micro_batch, grad_clip=grad_clip,
        )  # fmt: skip
        if grad_clip is None:
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            assert result.grad_norm == pytest.approx(
                float(torch.nn.utils.get_total_norm(grads)), rel=1e-12
            )
        results.append(result)
        weights.append(model.decoder.pred2.weight.detach().clone())
    assert np.isfinite(results[0].loss) and results[0].grad_norm > 1e-3
    assert results[0].loss == pytest.approx(results[1].loss, rel=1e-9)
    assert results[0].grad_norm == pytest.approx(results[1].grad_norm, rel=1e-9)
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-9, atol=1e-12)
    assert results[2].grad_norm == pytest.approx(results[0].grad_norm, rel=1e-9)  # before clipping
    assert not torch.allclose(weights[2], weights[0])


def test_training_gives_the_process_its_thread_count_back(tiny_video, tmp_path):
    """--set threads=N is for the run: a library call leaves the process's thread count as it was
    (a leaked count changed later tests' numerics)."""
    before = torch.get_num_threads()  # 1, from the one_thread fixture
    torch.set_num_threads(2)
    try:
        config = tiny_config(steps=1, threads=1)
        train(config, [tiny_video], tmp_path, model_overrides=SMALL_MODEL, progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_best_pth_carries_the_training_read(tiny_video, tmp_path):
    """A run's best.pth names its read as exported weights do, so every command runs it with the
    read it was trained with (it ran the authors' read before: measured on phase G's files)."""
    from hmmnlab.model.reads import read_variant
    from hmmnlab.weights import trained_read

    read = read_variant("hmmn", sigma=1.5, temperature=10)
    config = dataclasses.replace(tiny_config(steps=1), read=read)
    train(config, [tiny_video], tmp_path, model_overrides=SMALL_MODEL, progress=False)
    found, why = trained_read(tmp_path / BEST_FILE)
    assert (found.variant, found.sigma, found.temperature) == ("hmmn", 1.5, 10)
    assert "metadata" in why
    model = load_model(tmp_path / BEST_FILE)
    assert model.default_read == found


def test_frozen_stages_do_not_change(tiny_video, tmp_path):
    config = tiny_config(steps=2, freeze_stages=2, lr=1e-2)
    before = build_model(config, SMALL_MODEL).state_dict()
    train(config, [tiny_video], tmp_path, model_overrides=SMALL_MODEL, progress=False)
    after = torch.load(tmp_path / STATE_FILE, weights_only=False)["model"]
    for key in ("query_encoder.conv_stem.weight", "memory_encoder.blocks.0.0.conv_dw.weight"):
        assert torch.equal(before[key], after[key]), key
    for key in ("query_encoder.blocks.1.0.conv_pw.weight", "memory_encoder.conv1_m.weight"):
        assert not torch.equal(before[key], after[key]), key
    with pytest.raises(ValueError, match="trunk has 6 stages"):
        frozen_modules(build_model(config, SMALL_MODEL), 7)


def test_imagenet_start_keeps_batchnorm_statistics():
    """From ImageNet the BatchNorm statistics are the ImageNet ones (no calibration)."""
    from hmmnlab.model import efficientnet

    model = build_model(TrainConfig(), SMALL_MODEL)
    reference = efficientnet.imagenet_state_dict()
    ours = model.query_encoder.state_dict()
    assert torch.equal(ours["bn1.running_var"], reference["bn1.running_var"])
    assert torch.equal(ours["blocks.3.1.bn2.weight"], reference["blocks.3.1.bn2.weight"])
    assert model.memory_encoder.conv1_m.weight.abs().sum() == 0
    scratch = build_model(TrainConfig(imagenet_init=False), SMALL_MODEL)
    assert not torch.equal(
        scratch.query_encoder.state_dict()["bn1.running_var"], ours["bn1.running_var"]
    )


def test_shift_moves_content_and_fills_with_zeros():
    image = np.arange(1, 17, dtype=np.uint8).reshape(4, 4)
    moved = shift_content(image, 1, -2)
    assert moved[0].tolist() == [0, 0, 0, 0]
    assert moved[1].tolist() == [3, 4, 0, 0]
    assert np.array_equal(shift_content(image, 0, 0), image)
    config = ClipConfig(crop_size=SIZE, shift=0.4, shift_prob=1.0, max_objects=1, jitter=0.0)
    video = make_video(1, SIZE)
    rng = np.random.default_rng(5)
    clips = [video_clip(video, 0, config, rng) for _ in range(6)]
    black_rows = [
        int((c.frames[0].sum(dim=(0, 2)) == 0).sum() + (c.frames[0].sum(dim=(0, 1)) == 0).sum())
        for c in clips
        if c is not None
    ]
    assert max(black_rows) > 0  # some clips carry a zero band, as padding does
    with pytest.raises(ValueError, match="shift"):
        ClipConfig(shift=1.5)


def test_tied_keys_match_before_training():
    """From ImageNet with tied key projections, the untrained reads already follow the objects
    (the reason training starts that way); with untied random projections they do not."""
    from hmmnlab.inside.lesson import load_demo
    from hmmnlab.inside.teaching import score_video
    from hmmnlab.train.loop import tie_keys

    demo = load_demo("solo-blob", num_frames=6)
    labels = np.stack([demo.sequence.mask(i) for i in range(6)])
    torch.manual_seed(0)
    model = build_model(TrainConfig()).eval()
    _, untied = score_video(model, demo.frames, labels, topk_frames=(5,))
    tie_keys(model)
    assert torch.equal(model.kv_m_r4.key.weight, model.kv_q_r4.key.weight)
    _, tied = score_video(model, demo.frames, labels, topk_frames=(5,))
    assert tied.summary()["flow_hits"] > 0.8
    assert tied.summary()["topk_precision"] > 2 * tied.summary()["topk_chance"]
    assert untied.summary()["flow_hits"] < tied.summary()["flow_hits"] - 0.2


def test_mask_convolutions_get_their_own_learning_rate(tiny_video, tmp_path):
    """``mask_lr_mult`` puts the memory encoder's mask and other-objects stem convolutions in an
    optimizer group of their own. Adam's first step moves every weight by about its learning rate,
    so after one training step they have moved ``mask_lr_mult`` times further than the rest."""
    model = build_model(tiny_config(), SMALL_MODEL)
    groups = parameter_groups(model, 20.0)
    encoder = model.memory_encoder
    assert [g["lr_mult"] for g in groups] == [20.0, 1.0]
    assert {id(p) for p in groups[0]["params"]} == {
        id(encoder.conv1_m.weight),
        id(encoder.conv1_o.weight),
    }
    everything = [id(p) for g in groups for p in g["params"]]
    assert len(everything) == len(set(everything)) == len(list(model.parameters()))

    config = tiny_config(steps=1, lr=1e-4, mask_lr_mult=20.0, grad_clip=None)
    torch.manual_seed(config.seed)  # the initial weights train() starts from
    before = build_model(config, SMALL_MODEL).state_dict()
    train(config, [tiny_video], tmp_path, model_overrides=SMALL_MODEL, progress=False)
    after = torch.load(tmp_path / STATE_FILE, weights_only=False)["model"]

    def largest_change(key: str) -> float:
        return float((after[key] - before[key]).abs().max())

    assert largest_change("memory_encoder.conv1_m.weight") == pytest.approx(20 * 1e-4, rel=0.01)
    assert largest_change("decoder.pred2.weight") == pytest.approx(1e-4, rel=0.01)
    with pytest.raises(ValueError, match="mask_lr_mult"):
        TrainConfig(mask_lr_mult=0)


def _same_clips(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x.frames, y.frames) and torch.equal(x.labels, y.labels)
        for x, y in zip(a, b, strict=True)
    )


def test_loader_workers_draw_each_steps_clips_whatever_their_number(two_objects):
    """With loader_workers >= 1 the clips of step s come from step s's own stream: 1 or 2 worker
    processes, or none, give the same clips in step order, and starting at step 3 (a resumed run)
    gives those of steps 3.. ."""
    import types

    from hmmnlab.train.loop import draw_batch, step_clips, step_rng

    config = tiny_config(steps=6, batch_size=2, crop_size=48, flip=True, jitter=0.2,
                         scale_jitter=0.25, max_objects=2, skip_end=1)  # fmt: skip
    groups = [[two_objects]]
    clip_config = config.clip_config()
    here = [draw_batch(groups, config, clip_config, step_rng(config, s), s) for s in range(6)]
    assert not _same_clips(here[0], here[1])  # each step its own clips

    def drawn(workers: int, start: int = 0) -> list:
        run = types.SimpleNamespace(
            config=dataclasses.replace(config, loader_workers=workers), step=start, rng=None
        )
        return list(step_clips(run, groups, 6))

    for workers, start in ((1, 0), (2, 0), (2, 3)):
        batches = drawn(workers, start)
        assert len(batches) == 6 - start
        assert all(_same_clips(a, b) for a, b in zip(batches, here[start:], strict=True)), workers


def test_a_run_with_loader_workers_resumes_with_any_number_of_them(tiny_video, tmp_path):
    config = tiny_config(steps=4, ckpt_every=100, loader_workers=2, flip=True, jitter=0.2)
    kwargs = dict(model_overrides=SMALL_MODEL, progress=False)
    straight = train(config, [tiny_video], tmp_path / "a", **kwargs)
    train(config, [tiny_video], tmp_path / "b", stop_after=2, **kwargs)
    with pytest.raises(ValueError, match="loader_workers: 'per step' in the run, 'shared' asked"):
        train(dataclasses.replace(config, loader_workers=0), [tiny_video], tmp_path / "b",
              resume=True, **kwargs)  # fmt: skip
    one = dataclasses.replace(config, loader_workers=1)
    resumed = train(one, [tiny_video], tmp_path / "b", resume=True, **kwargs)
    assert resumed.step == 4
    assert resumed.losses == pytest.approx(straight.losses[2:], rel=1e-5)
