"""Training HMMN: clip sampling and augmentation, the loss, and the training loop."""

from hmmnlab.train.clips import Clip, ClipConfig, sample_clip
from hmmnlab.train.loop import TrainConfig, forward_clip, set_train_mode, train
from hmmnlab.train.losses import aggregated_cross_entropy, clip_loss

__all__ = [
    "Clip",
    "ClipConfig",
    "TrainConfig",
    "aggregated_cross_entropy",
    "clip_loss",
    "forward_clip",
    "sample_clip",
    "set_train_mode",
    "train",
]
