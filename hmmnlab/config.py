"""Configuration: frozen dataclasses for the network and for the memory read, and named presets.

``ModelConfig`` fixes the architecture (what the weights depend on). ``ReadConfig`` fixes how memory
is read and scheduled at inference time; it can change without retraining. Ablations are written as
``dataclasses.replace(config, ...)`` and ``to_dict()`` gives flat columns for an ablation table.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass

from hmmnlab.registry import fine_read_names, kernel_names

BACKBONES = ("resnet50", "resnet18", "efficientnet_lite0")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_finite_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class ModelConfig:
    """The HMMN architecture.

    The defaults are the authors' model: ResNet-50 encoders, and the key/value widths of the
    released checkpoint. ``decoder_dim`` is the width of the decoder's feature maps.
    """

    backbone: str = (
        "resnet50"  # the encoders' trunk: a torchvision ResNet or timm EfficientNet-Lite0
    )
    key_dim_r4: int = 128  # key channels at stride 16 (memory and query)
    value_dim_r4: int = 512  # value channels at stride 16 (memory and query)
    key_dim_r3: int = 128  # key channels at stride 8
    value_dim_r3: int = 256  # memory value channels at stride 8
    key_dim_r2: int = 64  # key channels at stride 4
    value_dim_r2: int = 128  # memory value channels at stride 4
    decoder_dim: int = 256  # channels inside the decoder

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name != "backbone" and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"{field.name} must be a positive int, got {value!r}")

    @property
    def feature_dims(self) -> tuple[int, int, int]:
        """Channels of the encoder features (r4, r3, r2): ResNet layer3, layer2, layer1, or
        EfficientNet-Lite0 blocks 4, 2, 1."""
        return {
            "resnet50": (1024, 512, 256),
            "resnet18": (256, 128, 64),
            "efficientnet_lite0": (112, 40, 24),
        }[self.backbone]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ReadConfig:
    """How memory is scheduled and read at inference time (no retraining needed to change it).

    The defaults are exactly the authors' inference code (``HMMN_SPEC.md``).
    """

    variant: str = "hmmn"  # the r4 read: a registered kernel (reads.KERNELS: hmmn, kmn, stm...)
    fine: str = "topk"  # the r3/r2 reads: a registered fine read (reads.FINE_READS: topk...)
    guidance: str = (
        "first-last"  # r4 memory frames guiding r3/r2: "first-last" (0 and t-1) or "all"
    )
    mem_every: int = 5  # every mem_every-th frame is kept in the r4 memory (frame 0 always)
    max_memory_frames: int | None = None  # cap on r4 memory frames (oldest but frame 0 dropped)
    window: int = 7  # side of the window in which frame t-1's positions look for their argmax
    sigma: float = 3.0  # Gaussian kernel width (r4 grid cells) for frame t-1
    sigma_growth: float = 0.5  # older frame k steps back: sigma * (1 + sigma_growth * k)
    temperature: float = 1.0  # r4 softmax(S / temperature) before the kernel (1: the authors')
    topk_r3: int = 32  # r4 memory cells selected per r4 query cell to guide the r3 read
    topk_r2: int | None = None  # cells guiding the r2 read; None = max(topk_r3 // 4, 1)
    dense_chunk_mib: float = 256.0  # budget of one chunk of a dense fine read's query positions

    def __post_init__(self) -> None:
        choices = {  # the registries are the lists of read variants (hmmnlab.registry)
            "variant": kernel_names(),
            "fine": fine_read_names(),
            "guidance": ("first-last", "all"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not _is_int(self.mem_every) or self.mem_every < 1:
            raise ValueError(f"mem_every must be an int >= 1, got {self.mem_every!r}")
        if self.max_memory_frames is not None and (
            not _is_int(self.max_memory_frames) or self.max_memory_frames < 2
        ):
            raise ValueError(
                f"max_memory_frames must be None or an int >= 2 (frame 0 and frame t-1), "
                f"got {self.max_memory_frames!r}"
            )
        if not _is_int(self.window) or self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"window must be a positive odd int, got {self.window!r}")
        if not _is_finite_number(self.sigma) or self.sigma <= 0:
            raise ValueError(f"sigma must be a finite number > 0, got {self.sigma!r}")
        if not _is_finite_number(self.sigma_growth) or self.sigma_growth < 0:
            raise ValueError(
                f"sigma_growth must be a finite number >= 0, got {self.sigma_growth!r}"
            )
        if not _is_finite_number(self.temperature) or self.temperature <= 0:
            raise ValueError(f"temperature must be a finite number > 0, got {self.temperature!r}")
        if not _is_int(self.topk_r3) or self.topk_r3 < 1:
            raise ValueError(f"topk_r3 must be an int >= 1, got {self.topk_r3!r}")
        if self.topk_r2 is not None and (not _is_int(self.topk_r2) or self.topk_r2 < 1):
            raise ValueError(f"topk_r2 must be None or an int >= 1, got {self.topk_r2!r}")
        if not _is_finite_number(self.dense_chunk_mib) or self.dense_chunk_mib <= 0:
            raise ValueError(
                f"dense_chunk_mib must be a finite number > 0, got {self.dense_chunk_mib!r}"
            )

    @property
    def k_r3(self) -> int:
        return self.topk_r3

    @property
    def k_r2(self) -> int:
        return self.topk_r2 if self.topk_r2 is not None else max(self.topk_r3 // 4, 1)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The small teaching models' widths (keys, values, decoder), whatever their trunk.
DEMO_WIDTHS = dict(
    key_dim_r4=64,
    value_dim_r4=128,
    key_dim_r3=32,
    value_dim_r3=64,
    key_dim_r2=16,
    value_dim_r2=32,
    decoder_dim=64,
)

PRESETS: dict[str, ModelConfig] = {
    # The authors' HMMN (loads their released checkpoint).
    "hmmn": ModelConfig(),
    # A small model with the same stages, reads and hooks, for CPU teaching (trained by hmmnlab
    # from ImageNet-initialised EfficientNet-Lite0 encoders; the bundled ``demo`` weights).
    "demo": ModelConfig(backbone="efficientnet_lite0", **DEMO_WIDTHS),
    # The earlier demo architecture (ResNet-18 encoders trained from scratch).
    "demo-resnet18": ModelConfig(backbone="resnet18", **DEMO_WIDTHS),
}


def preset(name: str) -> ModelConfig:
    """The named architecture preset, e.g. ``preset("hmmn")``."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; known presets: {sorted(PRESETS)}")
    return PRESETS[name]


# ----------------------------------------------------------------------------------------------------
# key=value

TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


def field_types(cls: type) -> dict[str, tuple[type, bool]]:
    """Dataclass field name -> (its type, whether None is allowed), e.g. ``ReadConfig``'s
    ``{"sigma": (float, False), "topk_r2": (int, True), ...}``."""
    hints = typing.get_type_hints(cls)
    kinds = {}
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        optional = False
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            args = typing.get_args(hint)
            optional = type(None) in args
            rest = [arg for arg in args if arg is not type(None)]
            hint = rest[0] if len(rest) == 1 else hint
        kinds[field.name] = (hint, optional)
    return kinds


def field_defaults(cls: type) -> dict[str, object]:
    """Dataclass field name -> its default (without building an instance)."""
    return {f.name: f.default for f in dataclasses.fields(cls)}


def _parse_value(text: str, kind: type, *, where: str, key: str) -> object:
    """``text`` as a value of type ``kind``; errors start with ``where`` (the option and item)."""
    if kind is bool:
        if text.lower() in TRUE_WORDS:
            return True
        if text.lower() in FALSE_WORDS:
            return False
        raise ValueError(f"{where}: expected true or false for {key}, found {text!r}")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{where}: expected an integer for {key}, found {text!r}") from None
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{where}: expected a number for {key}, found {text!r}") from None
    if kind is str:
        return text
    raise ValueError(f"{where}: {key} (of type {kind}) cannot be set from the command line")


def parse_fields(
    items: Iterable[str] | None,
    cls: type,
    *,
    option: str,
    what: str = "field",
    prefix: str = "",
) -> dict[str, object]:
    """``key=value`` items -> {field: value} for the fields of the dataclass ``cls``, e.g.
    ``parse_fields(["sigma=7", "fine=dense", "topk_r2=none"], ReadConfig, option="--read")`` ->
    ``{"sigma": 7.0, "fine": "dense", "topk_r2": None}``.

    Each value is parsed by its field's type (int, float, str; bool from true/false, yes/no, on/off,
    1/0); ``none`` gives None where the field allows it (and is the text "none" for a str field that
    does not, e.g. ``fine=none``). Dashes in keys count as underscores; with a
    ``prefix`` (``"model."``) every key must start with it and names the field after it. Errors name
    ``option`` and the item: no ``=``, an unknown key (listing the known ones, called ``what``), a
    key given twice, a value of the wrong type."""
    kinds = field_types(cls)
    values: dict[str, object] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        key, text = key.strip().replace("-", "_"), text.strip()
        if not sep:
            raise ValueError(f"{option} expects key=value, got {item!r}")
        where = f"{option} {item}"
        name = key.removeprefix(prefix)
        if not key.startswith(prefix) or name not in kinds:
            raise ValueError(f"{where}: unknown {what} {name!r}; known: {', '.join(sorted(kinds))}")
        if name in values:
            raise ValueError(f"{option} {key} is given twice")
        kind, optional = kinds[name]
        if text.lower() == "none" and not (kind is str and not optional):
            if not optional:
                raise ValueError(f"{where}: {name} cannot be none (expected {kind.__name__})")
            values[name] = None
        else:
            values[name] = _parse_value(text, kind, where=where, key=name)
    return values
