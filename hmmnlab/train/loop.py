"""The training loop: STM/HMMN's recipe on clips of 3 frames, with checkpoints, resume and a CSV
log.

A step draws ``batch_size`` clips (:mod:`hmmnlab.train.clips`) and runs each exactly as inference
does (:func:`forward_clip`): frame 0 with its ground-truth mask goes into a
:class:`~hmmnlab.memory.MemoryBank`, frame 1 is segmented through the kernel-guided r4 read and the
top-k guided r3/r2 reads, frame 1 with its *predicted* soft probabilities goes into memory, frame 2
is segmented. The loss is the cross-entropy of the soft-aggregated outputs of frames 1 and 2
(:mod:`hmmnlab.train.losses`). Adam, learning rate with a linear warm-up and a cosine decay; the
encoders' BatchNorm layers stay in eval mode (as the authors train), after an optional calibration
of their statistics when training from scratch.

Files in ``out``: ``state.pth`` (model, optimizer, step, random states: what ``--resume`` reads),
``best.pth`` (an hmmnlab checkpoint of the best validation J&F, or of the last step without
validation; weights stored as float16),
``log.csv`` (loss per ``log_every`` steps, validation J and F per held-out set every ``val_every``,
with the default :class:`~hmmnlab.config.ReadConfig`: the read users run).

Beside the loop: :mod:`hmmnlab.train.config` (``TrainConfig``, ``--set``, the schedule),
:mod:`hmmnlab.train.setup` (the model before its first step), :mod:`hmmnlab.train.checkpoints`
(those files, resume) and :mod:`hmmnlab.train.command` (``hmmnlab train``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from hmmnlab import ops
from hmmnlab.config import ReadConfig
from hmmnlab.evaluation.metrics import evaluate_semisupervised
from hmmnlab.hooks import HookContext
from hmmnlab.inference import propagate, resolve_device
from hmmnlab.memory import MemoryBank
from hmmnlab.model import HMMN
from hmmnlab.precision import torch_threads
from hmmnlab.step import segment_step
from hmmnlab.train import distributed

# The run's files, its settings and the model setup live beside the loop; their names stay
# importable from here (``from hmmnlab.train.loop import TrainConfig, STATE_FILE, ...``).
from hmmnlab.train.checkpoints import (
    BEST_FILE,
    LOG_FILE,
    RESUMABLE_CHANGES,
    STATE_FILE,
    STATE_KEYS,
    RunLog,
    RunState,
    check_resume,
    initial_weights,
    load_state,
    save_half_checkpoint,
    save_state,
    truncate_log,
)
from hmmnlab.train.clips import Clip, Video, sample_clip
from hmmnlab.train.config import (
    READ_SHORTHANDS,
    TrainConfig,
    learning_rate,
    max_skip_at,
    parse_overrides,
)
from hmmnlab.train.losses import attention_shares, attention_term, clip_loss, keep_in
from hmmnlab.train.setup import (
    build_model,
    calibrate_batchnorm,
    encoder_batchnorms,
    freeze,
    frozen_modules,
    parameter_groups,
    set_train_mode,
    starts_pretrained,
    tie_keys,
)
from hmmnlab.weights import check_state_dict

__all__ = [
    "BEST_FILE",
    "LOG_FILE",
    "READ_SHORTHANDS",
    "RESUMABLE_CHANGES",
    "STATE_FILE",
    "STATE_KEYS",
    "RunLog",
    "RunState",
    "StepResult",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "all_finite",
    "attention_shares",
    "attention_term",
    "build_model",
    "calibrate_batchnorm",
    "check_resume",
    "encoder_batchnorms",
    "evaluate",
    "forward_clip",
    "forward_clips",
    "freeze",
    "frozen_modules",
    "initial_weights",
    "learning_rate",
    "load_state",
    "max_skip_at",
    "parameter_groups",
    "parse_overrides",
    "save_half_checkpoint",
    "save_state",
    "set_train_mode",
    "tie_keys",
    "train",
    "train_step",
    "truncate_log",
]


# --------------------------------------------------------------------------------------------------
# The forward pass of a clip


def forward_clips(
    model: HMMN, clips: Sequence[Clip], read: ReadConfig, device: torch.device, *, hooks=None
) -> list[list[Tensor]]:
    """Run a batch of clips as :func:`hmmnlab.inference.propagate` runs a video, all clips in one
    :func:`~hmmnlab.step.segment_step` per frame; returns, per clip, the soft-aggregation logits
    (K+1) x H x W of frames 1..N-1 (with gradients).

    Frame 0 enters the memory with its ground-truth mask, every later frame with its predicted soft
    probabilities, so the kernel track, the top-k selection and the memory schedule are the ones the
    model meets at test time. The clips must have the same number of frames and the same size.
    hooks: causal hook functions, as for ``propagate`` (see :func:`hmmnlab.hooks.intervene`)."""
    sizes = {(len(c.frames), *c.frames.shape[-2:]) for c in clips}
    if len(sizes) != 1:
        raise ValueError(f"clips of one batch must have the same frames and size, got {sizes}")
    frames = torch.stack([c.frames for c in clips], dim=1).to(device)  # T x N x 3 x H x W
    height, width = frames.shape[-2:]
    padding = ops.padding_for(height, width)
    frames = ops.pad(frames, padding)
    counts = [c.num_objects for c in clips]
    probs = [
        torch.nn.functional.one_hot(c.labels[0].to(device), c.num_objects + 1)
        .permute(2, 0, 1)
        .to(frames.dtype)
        for c in clips
    ]  # per clip (K+1) x H x W
    bank = MemoryBank(
        mem_every=read.mem_every,
        max_frames=read.max_memory_frames,
        keep_fine=read.guidance == "all",
    )
    outputs: list[list[Tensor]] = [[] for _ in clips]
    for t in range(1, len(frames)):
        masks = ops.pad(torch.cat([p[1:] for p in probs]), padding)  # B x Hp x Wp
        step = segment_step(
            model, bank, t, frames[t - 1], masks, frames[t], read, objects_per_video=counts,
            hooks=hooks,
        )  # fmt: skip
        for out, logits in zip(outputs, step.logits, strict=True):
            out.append(ops.unpad(logits, padding))  # (K+1) x H x W
        probs = [ops.unpad(p, padding) for p in step.probs]  # what goes into memory next
    return outputs


def forward_clip(model: HMMN, clip: Clip, read: ReadConfig, device: torch.device) -> list[Tensor]:
    """:func:`forward_clips` of one clip: the logits of its frames 1..N-1."""
    return forward_clips(model, [clip], read, device)[0]


# --------------------------------------------------------------------------------------------------
# Validation


def evaluate(
    model: HMMN,
    videos: Sequence[Video],
    *,
    device: torch.device,
    max_frames: int | None = None,
    read: ReadConfig | None = None,
) -> dict[str, float]:
    """Mean J, F and J&F over ``videos`` with :func:`~hmmnlab.inference.propagate` (the real
    inference; the official conventions of
    :func:`~hmmnlab.evaluation.metrics.evaluate_semisupervised`)."""
    js, fs = [], []
    for video in videos:
        n = len(video) if max_frames is None else min(len(video), max_frames)
        frames = [np.array(video.frame(i)) for i in range(n)]  # writable copies for torch
        gt = np.stack([video.labels(i) for i in range(n)])
        pred = np.stack(
            [
                r.labels.cpu().numpy()
                for r in propagate(model, frames, gt[0], read=read, device=device)
            ]
        ).astype(gt.dtype)
        scores = evaluate_semisupervised(gt, pred, name=video.name)
        js.append(float(np.nanmean(scores.j.mean(axis=1))))
        fs.append(float(np.nanmean(scores.f.mean(axis=1))))
    j, f = float(np.mean(js)), float(np.mean(fs))
    return {"J": j, "F": f, "JF": (j + f) / 2}


# --------------------------------------------------------------------------------------------------
# One optimizer step


class TrainingDiverged(RuntimeError):
    """A non-finite loss, gradient norm or weight: the run stopped, its last finite files kept."""


def all_finite(tensors: Sequence[Tensor]) -> bool:
    """Whether every value of ``tensors`` is finite (one reduction per tensor, no copies)."""
    return all(bool(torch.isfinite(t).all()) for t in tensors)


@dataclass
class TrainResult:
    step: int  # steps done in all
    losses: list[float]  # loss of every step run by this call
    best: dict  # best validation scores seen ({} without validation)
    out: Path


@dataclass(frozen=True)
class StepResult:
    """What one optimizer step measured."""

    loss: float  # the batch's mean loss (summed over the processes' shares)
    grad_norm: float  # total gradient norm before clipping (unscaled; inf under AMP: step skipped)


def train_step(
    model: HMMN,
    optimizer: torch.optim.Optimizer,
    clips: Sequence[Clip],
    read: ReadConfig,
    *,
    device: torch.device,
    scaler: torch.amp.GradScaler | None = None,
    amp: bool = False,
    micro_batch: int | None = None,
    bootstrap: float = 1.0,
    grad_clip: float | None = None,
    attention_loss: float = 0.0,
    world: distributed.World | None = None,
    parameters: Sequence[nn.Parameter] | None = None,
) -> StepResult:
    """One optimizer step on the batch ``clips``: zero the gradients, run this process's share
    ``clips[rank::size]`` (:func:`forward_clips`) in chunks of ``micro_batch`` clips (None: all at
    once) whose gradients accumulate, under float16 autocast with ``amp`` (CUDA), sum the gradients
    and the loss over the processes, clip the gradient norm to ``grad_clip`` (None: no clipping)
    and step. The loss is the mean over the whole batch of :func:`~hmmnlab.train.losses.clip_loss`,
    plus ``attention_loss`` times the r4 attention off the object
    (:func:`~hmmnlab.train.losses.attention_term`).
    A non-finite loss or gradient norm (without AMP) raises :class:`TrainingDiverged` before the
    step, non-finite weights after it.

    scaler: the AMP GradScaler (None: a disabled one); parameters: the trainable parameters
    (default: those of ``model`` that require gradients)."""
    world = world or distributed.World()
    scaler = scaler or torch.amp.GradScaler("cuda", enabled=False)
    if parameters is None:
        parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    mine = clips[world.rank :: world.size]  # this process's share (all of it alone)
    chunk = micro_batch or len(mine)
    for first in range(0, len(mine), chunk):  # gradients accumulate over the chunks
        group = mine[first : first + chunk]
        affinities: list[tuple[HookContext, Tensor]] = []
        hooks = {"r4.affinity": keep_in(affinities)} if attention_loss > 0 else None
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            batch_logits = forward_clips(model, group, read, device, hooks=hooks)
            per_clip = [
                clip_loss([x.float() for x in logits], clip.labels.to(device), bootstrap=bootstrap)
                for clip, logits in zip(group, batch_logits, strict=True)
            ]
            loss = torch.stack(per_clip).sum() / len(clips)  # the batch mean, in parts
            if attention_loss > 0:
                share = len(group) / len(clips)
                loss = loss + attention_loss * share * attention_term(group, affinities, device)
        scaler.scale(loss).backward()
        total += loss.item()
    distributed.all_reduce_gradients(list(parameters), world)
    total = distributed.all_reduce_sum(total, world, device)
    if not math.isfinite(total):  # every process has the same sum: they all stop here
        raise TrainingDiverged(f"the loss is {total}")
    scaler.unscale_(optimizer)  # a no-op without AMP; else the step would unscale the same way
    if grad_clip is not None:
        norm = torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in parameters if p.grad is not None])
    # with AMP the scaler skips a step whose gradients overflow (and lowers its scale)
    if not amp and not math.isfinite(float(norm)):
        raise TrainingDiverged(f"the gradient norm is {float(norm)} (loss {total:.6g})")
    scaler.step(optimizer)
    scaler.update()
    if not all_finite([p.detach() for p in parameters]):
        raise TrainingDiverged(
            f"the weights are no longer finite after the update (loss {total:.6g})"
        )
    return StepResult(total, float(norm))


# --------------------------------------------------------------------------------------------------
# The loop


def train(
    config: TrainConfig,
    videos: Sequence[Video],
    out: str | Path,
    *,
    real_videos: Sequence[Video] = (),
    val_sets: dict[str, Sequence[Video]] | None = None,
    model_overrides: dict | None = None,
    init: str | Path | None = None,
    resume: bool = False,
    device: str | torch.device = "cpu",
    amp: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train (or resume) a model on ``videos`` (synthetic) and ``real_videos`` (DAVIS folders).

    ``val_sets`` maps a name (e.g. ``"synthetic"``, ``"davis"``) to held-out videos, scored every
    ``val_every`` steps and at the end. ``stop_after`` ends this call after that many steps (the
    schedule still runs to ``config.steps``; used by tests of resuming). ``init`` starts from the
    weights of an hmmnlab checkpoint or a run's ``state.pth``, same architecture (fine-tuning: no
    BatchNorm calibration, a fresh optimizer and schedule); ``resume`` takes precedence over it.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    world, device = distributed.setup(resolve_device(device))
    if config.batch_size % world.size:
        raise ValueError(
            f"batch_size={config.batch_size} must be a multiple of the {world.size} processes"
        )
    groups = [list(g) for g in (videos, real_videos) if len(g)]
    if not groups:
        raise ValueError("no training videos: give --synthetic N and/or --davis ROOT")
    val_sets = {k: list(v) for k, v in (val_sets or {}).items() if len(v)}
    with torch_threads(config.threads):  # the process's own count back afterwards
        torch.manual_seed(config.seed)  # the initial weights
        model = build_model(config, model_overrides).to(device)
        freeze(frozen_modules(model, config.freeze_stages))
        optimizer = torch.optim.Adam(
            parameter_groups(model, config.mask_lr_mult),
            lr=config.lr,
            weight_decay=config.weight_decay,
        )
        rng = np.random.default_rng([config.seed, 2021])
        run = RunState(config, out, model, optimizer, rng, init, validates=bool(val_sets))
        if resume:
            run.resume()
        else:
            _initialise(run, groups, device)
        set_train_mode(model, freeze_bn=config.freeze_bn)
        log = RunLog(out / LOG_FILE, val_sets, main=world.main, resume=resume, step=run.step)
        end = config.steps if stop_after is None else min(config.steps, run.step + stop_after)
        losses = _run_steps(
            run, groups, val_sets, log, end, world=world, device=device,
            amp=amp and device.type == "cuda", progress=progress,
        )  # fmt: skip
        distributed.barrier(world)  # the others wait for rank 0's last validation and checkpoint
        return TrainResult(run.step, losses, run.best, out)


def _initialise(run: RunState, groups: list[list[Video]], device: torch.device) -> None:
    """A fresh run's weights: those of ``init``; else the key projections tied (ImageNet trunks);
    else the BatchNorm statistics calibrated on ``bn_calibration`` clips (from scratch)."""
    config, model = run.config, run.model
    pretrained = starts_pretrained(model.config, config)
    if run.init is not None:
        state_dict = initial_weights(run.init)
        check_state_dict(model, state_dict, str(run.init))
        model.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True)
    elif config.tie_keys and pretrained:
        tie_keys(model)
    elif config.freeze_bn and config.bn_calibration > 0 and not pretrained:
        clip_config = config.clip_config()
        calib = [
            _draw(groups, config, clip_config, run.rng, static=False, step=0)
            for _ in range(config.bn_calibration)
        ]
        calibrate_batchnorm(model, calib, device)


def _run_steps(
    run: RunState,
    groups: list[list[Video]],
    val_sets: dict[str, list[Video]],
    log: RunLog,
    end: int,
    *,
    world: distributed.World,
    device: torch.device,
    amp: bool,
    progress: bool,
) -> list[float]:
    """Steps from ``run.step`` to ``end``: each draws its clips, takes an optimizer step, and on
    rank 0 logs, validates and saves on their schedules; returns the loss of every step."""
    config, model, optimizer = run.config, run.model, run.optimizer
    read = config.read_config()
    batches = step_clips(run, groups, end)  # the clips of every step, in step order
    trainable = [p for p in model.parameters() if p.requires_grad]
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    losses, window = [], []
    bar = tqdm(
        total=config.steps,
        initial=run.step,
        desc="train",
        unit="step",
        disable=not progress or not world.main,
        dynamic_ncols=True,
    )
    started = time.perf_counter() - run.elapsed
    while run.step < end:
        lr = learning_rate(config, run.step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_mult"]
        clips = next(batches)
        try:
            result = train_step(
                model, optimizer, clips, read, device=device, scaler=scaler, amp=amp,
                micro_batch=config.micro_batch, bootstrap=config.bootstrap,
                grad_clip=config.grad_clip, attention_loss=config.attention_loss, world=world,
                parameters=trainable,
            )  # fmt: skip
        except TrainingDiverged as error:  # nothing of this step was saved
            bar.close()
            batches.close()
            raise TrainingDiverged(
                f"training diverged at step {run.step + 1}: {error}; stopped without saving it. "
                f"Kept: {run.kept()}; lower lr (or set grad_clip) and train again, or --resume "
                "from the kept state with the same settings"
            ) from None
        run.step += 1
        step = run.step
        run.elapsed = time.perf_counter() - started
        losses.append(result.loss)
        window.append(result.loss)
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(window):.4f}", skip=max_skip_at(config, step - 1))
        row = None
        if step % config.log_every == 0 or step == end:
            row = _loss_row(config, step, run.elapsed, lr, window)
            window = []
        if not world.main:  # rank 0 validates, logs and saves
            continue
        scores = None
        if val_sets and (step % config.val_every == 0 or step == config.steps):
            scores = _validate(model, val_sets, config, device)
            row = {**(row or {"step": step, "elapsed_s": run.elapsed}), **scores}
            bar.write(f"step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
        if row is not None:
            log.write(row)
        if scores or step % config.ckpt_every == 0 or step == end:
            run.checkpoint(scores)
    bar.close()
    batches.close()
    return losses


def _loss_row(config: TrainConfig, step: int, elapsed: float, lr: float, window) -> dict:
    """The log row of ``step``: the mean loss over the steps since the last row."""
    return {
        "step": step,
        "elapsed_s": elapsed,
        "lr": lr,
        "max_skip": max_skip_at(config, step - 1),
        "stage": "static" if step <= config.static_steps else "video",
        "loss": float(np.mean(window)),
    }


def _validate(
    model: HMMN, val_sets: dict[str, list[Video]], config: TrainConfig, device: torch.device
) -> dict:
    """J, F and J&F of every held-out set (``<set>_J`` ...), then the model back in training
    mode."""
    scores = {}
    for name, vids in val_sets.items():
        # the read users run (ReadConfig's defaults), whatever the clips were trained with
        s = evaluate(
            model,
            vids,
            device=device,
            max_frames=config.val_max_frames,
            read=config.validation_read(),
        )
        scores.update({f"{name}_{m}": v for m, v in s.items()})
    set_train_mode(model, freeze_bn=config.freeze_bn)
    return scores


def draw_batch(groups, config: TrainConfig, clip_config, rng, step: int) -> list[Clip]:
    """The ``batch_size`` clips of optimizer step ``step`` (0-based): static clips during the first
    ``static_steps`` steps and, after them, with probability ``static_prob``; else video clips
    with the step's largest frame skip."""
    static = step < config.static_steps or rng.random() < config.static_prob
    return [
        _draw(groups, config, clip_config, rng, static=static, step=step)
        for _ in range(config.batch_size)
    ]


def step_rng(config: TrainConfig, step: int) -> np.random.Generator:
    """The random stream of step ``step``'s clips when they are drawn by loader workers."""
    return np.random.default_rng([config.seed, 2021, step])


class StepClips(torch.utils.data.IterableDataset):
    """The clips of steps ``start`` .. ``end - 1``, each step's from its own stream
    (:func:`step_rng`). Worker w of W draws steps start + w, start + w + W, ...; the DataLoader
    takes one item from each worker in turn, so the steps come back in order."""

    def __init__(self, groups, config: TrainConfig, start: int, end: int) -> None:
        self.groups, self.config, self.start, self.end = groups, config, start, end

    def __iter__(self) -> Iterator[list[Clip]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        clip_config = self.config.clip_config()
        for step in range(self.start + worker, self.end, workers):
            yield draw_batch(
                self.groups, self.config, clip_config, step_rng(self.config, step), step
            )


def _as_drawn(batch: list[Clip]) -> list[Clip]:
    return batch


def step_clips(run: RunState, groups, end: int) -> Iterator[list[Clip]]:
    """The clips of steps ``run.step`` .. ``end - 1``, in order: with ``loader_workers`` 0 drawn
    here when asked, from the run's one stream (``run.rng``, saved in its checkpoints); else by
    ``loader_workers`` processes of a torch DataLoader, ahead of the training."""
    config = run.config
    if config.loader_workers == 0:
        clip_config = config.clip_config()
        for step in range(run.step, end):
            yield draw_batch(groups, config, clip_config, run.rng, step)
        return
    dataset = StepClips(groups, config, run.step, end)
    yield from torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=config.loader_workers, collate_fn=_as_drawn
    )


def _draw(groups, config, clip_config, rng, *, static: bool, step: int) -> Clip:
    """A clip from the synthetic group or the real group (``real_fraction`` of the time)."""
    if len(groups) == 1:
        videos = groups[0]
    elif config.real_fraction is None:
        videos = groups[0] + groups[1]
    else:
        videos = groups[1] if rng.random() < config.real_fraction else groups[0]
    return sample_clip(
        videos, static=static, max_skip=max_skip_at(config, step), config=clip_config, rng=rng
    )
