"""The settings of a training run: :class:`TrainConfig` and its checks, and the ``--set`` parser.

``hmmnlab train --set key=value`` sets a field of :class:`TrainConfig` (:func:`parse_overrides`);
``read.<field>=value`` a field of the training read, ``model.<field>=value`` one of the
architecture preset.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from hmmnlab.config import ModelConfig, ReadConfig, parse_fields, preset
from hmmnlab.train.clips import ClipConfig, skip_schedule


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
    attention_loss: float = (
        0.0  # weight of the r4 attention off the object (losses.attention_off_object)
    )
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
    # processes drawing the clips while the model trains (a torch DataLoader; 0: drawn here, between
    # steps, from one stream). With 1 or more, each step draws from a stream of its own, seeded by
    # (seed, step): the clips of a step are the same for any number of workers.
    loader_workers: int = 0

    def __post_init__(self) -> None:
        preset(self.preset)  # raises on an unknown name
        positive = ("steps", "batch_size", "log_every", "ckpt_every", "val_every", "max_objects")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not isinstance(self.loader_workers, int) or self.loader_workers < 0:
            raise ValueError(f"loader_workers must be an int >= 0, got {self.loader_workers!r}")
        if self.micro_batch is not None and self.micro_batch < 1:
            raise ValueError(f"micro_batch must be None or >= 1, got {self.micro_batch}")
        if not 0 <= self.static_steps <= self.steps:
            raise ValueError(
                f"static_steps must lie in 0..steps={self.steps}, got {self.static_steps}"
            )
        if not 0 < self.bootstrap <= 1:
            raise ValueError(f"bootstrap must lie in (0, 1], got {self.bootstrap}")
        if self.attention_loss < 0:
            raise ValueError(f"attention_loss must be >= 0, got {self.attention_loss}")
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

    ``--set`` items, parsed by :func:`hmmnlab.config.parse_fields` (the parser of ``--read``): each
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
# Schedule


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
