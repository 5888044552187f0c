"""Checkpoints: the authors' released HMMN file and hmmnlab's own files.

The authors' file is the ``state_dict()`` of ``nn.DataParallel(HMMN())``: every key starts with
``module.`` and uses their module names. :data:`AUTHORS_NAMES` is the one table that maps their names
to ours, one dotted component at a time (e.g. ``module.Encoder_Q.res4.5.bn3.running_mean`` ->
``query_encoder.layer3.5.bn3.running_mean``). Loading is strict: a missing, unexpected or mis-shaped
key is an error that names it.

hmmnlab's own checkpoints are a dict ``{"format": "hmmnlab", "model_config": {...}, "state_dict": {...},
"meta": {...}}`` so that the architecture loads back with the weights.

Bundled weights have names (``load_model("demo")``, ``--weights demo-stm``), as torchvision's weights
do: ``data_samples/weights/manifest.json`` describes each one as data (file, sha256, the read it was
trained with, recipe, measured numbers), and :func:`resolve_weights` turns a name into its checked file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from hmmnlab.config import ModelConfig, ReadConfig
from hmmnlab.data.davis import repo_path
from hmmnlab.model import HMMN
from hmmnlab.model.fast import fast_inference

FORMAT = "hmmnlab"
BUNDLED_WEIGHTS = Path(__file__).resolve().parents[1] / "data_samples" / "weights"
MANIFEST = "manifest.json"
AUTHORS_SOURCE = "authors' HMMN state dict"  # meta["source"] of a checkpoint in the authors' format

# The authors' module names -> hmmnlab's, per dotted component of a state-dict key.
AUTHORS_NAMES: dict[str, str] = {
    "Encoder_M": "memory_encoder",
    "Encoder_Q": "query_encoder",
    "res2": "layer1",
    "res3": "layer2",
    "res4": "layer3",
    "KV_M_r4": "kv_m_r4",
    "KV_Q_r4": "kv_q_r4",
    "KV_M_r3": "kv_m_r3",
    "KV_Q_r3": "kv_q_r3",
    "KV_M_r2": "kv_m_r2",
    "KV_Q_r2": "kv_q_r2",
    "Key": "key",
    "Value": "value",
    "Decoder": "decoder",
    "convFM": "conv_fm",
    "ResMM": "res_mm",
    "RF3": "refine_r3",
    "RF2": "refine_r2",
    "convFS": "conv_fs",
    "convMemory": "conv_memory",
    "ResFS": "res_fs",
}
HMMNLAB_NAMES = {ours: theirs for theirs, ours in AUTHORS_NAMES.items()}


def from_authors_key(key: str) -> str:
    """``module.Encoder_Q.res4.0.conv1.weight`` -> ``query_encoder.layer3.0.conv1.weight``."""
    key = key.removeprefix("module.")
    return ".".join(AUTHORS_NAMES.get(part, part) for part in key.split("."))


def to_authors_key(key: str) -> str:
    """Inverse of :func:`from_authors_key` (with the ``module.`` prefix of the released file)."""
    return "module." + ".".join(HMMNLAB_NAMES.get(part, part) for part in key.split("."))


def _read_file(path: Path) -> object:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many kinds (UnpicklingError, KeyError, ...)
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint (truncated, corrupted or another kind of "
            f"file): {str(err).splitlines()[0] if str(err) else type(err).__name__}"
        ) from err


def _is_state_dict(obj: object) -> bool:
    return (
        isinstance(obj, dict)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    )


def check_state_dict(
    model: torch.nn.Module, state_dict: dict[str, Tensor], source: str, *, authors: bool = False
) -> None:
    """Raise ValueError naming the first missing, unexpected and mis-shaped keys, if any; with
    ``authors`` each key is also named as the authors' file names it (``module.Encoder_M.mean``)."""

    def name(key: str) -> str:
        return f"{key} ({to_authors_key(key)} in the file)" if authors else key

    expected = model.state_dict()
    missing = [name(k) for k in expected if k not in state_dict]
    unexpected = [name(k) for k in state_dict if k not in expected]
    shapes = [
        f"{name(k)}: checkpoint {tuple(state_dict[k].shape)}, model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    problems = []
    for label, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("shape mismatches", shapes),
    ):
        if items:
            more = f" (and {len(items) - 5} more)" if len(items) > 5 else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:5])}{more}")
    if problems:
        raise ValueError(f"{source} does not fit the model: " + "; ".join(problems))


def check_finite(state_dict: dict[str, Tensor], source: str, *, authors: bool = False) -> None:
    """Raise ValueError naming the entries that hold NaN or infinite values (a model with one such
    weight outputs NaN, which would turn into all-background masks)."""
    bad = [
        f"{key} ({to_authors_key(key)} in the file)" if authors else key
        for key, value in state_dict.items()
        if value.is_floating_point() and not torch.isfinite(value).all()
    ]
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise ValueError(
            f"{source}: expected finite weights, found NaN or infinite values in {len(bad)} "
            f"entr{'y' if len(bad) == 1 else 'ies'}: {', '.join(bad[:5])}{more}"
        )


def load_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], ModelConfig, dict]:
    """Read a checkpoint file: (state dict in hmmnlab's names, model config, metadata).

    Accepts the authors' released file (keys with or without ``module.``) and hmmnlab checkpoints.
    Tensors are loaded with ``weights_only=True`` (no code in the file runs).
    """
    path = Path(path)
    obj = _read_file(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        try:
            config = ModelConfig(**obj["model_config"])
            state_dict, meta = obj["state_dict"], dict(obj.get("meta", {}))
        except (KeyError, TypeError) as err:
            raise ValueError(
                f"{path} is an hmmnlab checkpoint with a broken header: {err}"
            ) from err
        return state_dict, config, meta
    if _is_state_dict(obj):
        state_dict = {from_authors_key(k): v for k, v in obj.items()}
        return state_dict, ModelConfig(), {"source": AUTHORS_SOURCE}
    kind = type(obj).__name__
    keys = list(obj)[:5] if isinstance(obj, dict) else []
    raise ValueError(
        f"{path} is not an HMMN checkpoint: expected a state dict of tensors or an hmmnlab "
        f"checkpoint, found a {kind}" + (f" with keys {keys}" if keys else "")
    )


@dataclass(frozen=True)
class Weights:
    """One bundled set of weights, described as data (an entry of ``manifest.json``)."""

    name: str  # what users type: load_model("demo"), --weights demo
    file: str  # relative to data_samples/weights
    sha256: str  # of the file
    trained_read: str  # the r4 read variant used in training
    # the read these weights run by default: ReadConfig fields beside the variant, e.g.
    # {"sigma": 1.5, "temperature": 10.0} (empty: the variant's registered defaults)
    read: dict = field(default_factory=dict)
    description: str = ""
    recipe: str = ""  # how it was trained (the README next to the file has the commands)
    metrics: dict = field(default_factory=dict)  # measured numbers, with the command

    @property
    def path(self) -> Path:
        return BUNDLED_WEIGHTS / self.file

    def default_read(self):
        """The :class:`~hmmnlab.config.ReadConfig` these weights run unless told otherwise."""
        from hmmnlab.model.reads import read_variant

        return read_variant(self.trained_read, **self.read)


def registered_weights(folder: str | Path | None = None) -> dict[str, Weights]:
    """The bundled weights by name, read from ``manifest.json`` (empty if there is none)."""
    path = Path(folder or BUNDLED_WEIGHTS) / MANIFEST
    if not path.is_file():
        return {}
    entries = json.loads(path.read_text())["weights"]
    return {e["name"]: Weights(**e) for e in entries}


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_weights(weights: str | Path) -> Path:
    """A registered name (``"demo"``, ``"demo-stm"``) -> its bundled file, checked against its
    sha256; anything else is a path."""
    registry = registered_weights()
    if isinstance(weights, str) and weights in registry:
        entry = registry[weights]
        if not entry.path.is_file():
            raise FileNotFoundError(f"bundled weights {weights!r}: {entry.path} is missing")
        found = sha256_of(entry.path)
        if found != entry.sha256:
            raise ValueError(
                f"bundled weights {weights!r}: {entry.path} has sha256 {found[:12]}..., the "
                f"manifest expects {entry.sha256[:12]}... (a changed or partly downloaded file)"
            )
        return entry.path
    path = Path(weights)
    if not path.exists() and isinstance(weights, str) and "/" not in weights:
        if not weights.endswith((".pth", ".pt")):
            raise FileNotFoundError(
                f"{weights!r} is neither a file nor a registered weights name; registered: "
                f"{sorted(registry)}"
            )
    return path


def trained_read(weights: str | Path, meta: dict | None = None) -> tuple[ReadConfig, str]:
    """The read ``weights`` run by default, and why: a registered name's (or bundled file's)
    manifest entry (``trained_read`` and ``read``), an hmmnlab checkpoint's ``meta["trained_read"]``
    (and ``meta["read"]``), else the authors' read (``ReadConfig()``: the authors' checkpoint).
    ``meta``: the checkpoint's metadata when the caller has already loaded it (else it is read)."""
    registry = registered_weights()
    if isinstance(weights, str) and weights in registry:
        return registry[weights].default_read(), f"the read of weights {weights!r} (manifest)"
    for name, entry in registry.items():  # a bundled file given by its path
        if Path(weights).resolve() == entry.path.resolve():
            return entry.default_read(), f"the read of weights {name!r} (manifest)"
    if meta is None:
        try:
            payload = torch.load(Path(weights), map_location="cpu", weights_only=True, mmap=True)
            meta = payload.get("meta", {}) if isinstance(payload, dict) else {}
        except Exception:  # not a checkpoint we can read: load_model says why
            meta = {}
    return _read_of_meta(meta, Path(weights).name)


def _read_of_meta(meta: object, name: str) -> tuple[ReadConfig, str]:
    """The read a checkpoint's metadata names (``trained_read``, ``read``), else the authors'."""
    from hmmnlab.model.reads import read_variant

    if isinstance(meta, dict) and isinstance(meta.get("trained_read"), str):
        extra = meta.get("read") if isinstance(meta.get("read"), dict) else {}
        return read_variant(meta["trained_read"], **extra), f"the read {name} names (its metadata)"
    return ReadConfig(), "the authors' read (the checkpoint names no trained read)"


def load_model(
    weights: str | Path, *, device: str | torch.device = "cpu", fast: bool = False
) -> HMMN:
    """Build the model a checkpoint describes and load its weights strictly, in eval mode.

    ``weights``: a registered name (``"demo"``, ``"demo-stm"``: :func:`registered_weights`) or the
    path of a checkpoint file. ``fast``: the fast inference path (:mod:`hmmnlab.model.fast`: the
    BatchNorms folded into the convolutions, the encoders' weights channels-last; the same probabilities up to
    float rounding, for inference only). The commands use it."""
    path = resolve_weights(weights)
    state_dict, config, meta = load_checkpoint(path)
    model = HMMN(config)
    authors = meta.get("source") == AUTHORS_SOURCE
    check_state_dict(model, state_dict, str(path), authors=authors)
    check_finite(state_dict, str(path), authors=authors)
    model.load_state_dict(state_dict, strict=True)
    model.checkpoint_meta = meta
    # the read propagate() runs when given none (the manifest's, or the one the checkpoint names)
    model.default_read, model.default_read_source = trained_read(weights, meta)
    model = model.to(device).eval()
    if fast:
        fast_inference(model)
    return model


def save_checkpoint(model: HMMN, path: str | Path, *, meta: dict | None = None) -> None:
    """Save an hmmnlab checkpoint: weights, the model config and metadata (plain Python values)."""
    if getattr(model, "batchnorms_folded", False):
        raise ValueError(
            "this model's BatchNorms are folded into its convolutions (load_model(..., fast=True)): "
            "its state dict is not a checkpoint; save a model loaded without fast=True"
        )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": FORMAT,
            "model_config": model.config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "meta": dict(meta or {}),
        },
        path,
    )


# --------------------------------------------------------------------------------------------------
# A weights argument of a notebook or a benchmark: a model, a registered name or a path

#: Default weights: the demo model trained by hmmnlab on synthetic videos.
DEMO_WEIGHTS = "demo"  # the registered name of the bundled demo weights


def demo_weights(weights: str | Path | None = None) -> Path:
    """``weights`` (a registered name such as ``"demo-stm"`` or a path), else
    ``$HMMNLAB_DEMO_WEIGHTS``, else the registered ``demo`` weights; the file must exist."""
    path = resolve_weights(weights or os.environ.get("HMMNLAB_DEMO_WEIGHTS") or DEMO_WEIGHTS)
    if not path.is_file():
        raise FileNotFoundError(
            f"demo weights not found: {path} (train them with `hmmnlab train`, or set "
            "HMMNLAB_DEMO_WEIGHTS to a checkpoint)"
        )
    return path


def resolve_model(weights, device="cpu"):
    """The model ``weights`` names: an :class:`~hmmnlab.model.HMMN` as given; None or a registered
    name (``"demo"``, ``"demo-stm"``): those weights (None: ``$HMMNLAB_DEMO_WEIGHTS`` if set, else
    :data:`DEMO_WEIGHTS`); else a checkpoint path (relative paths also from the repository root),
    loaded on ``device``. A missing file is a FileNotFoundError."""
    if isinstance(weights, HMMN):
        return weights
    if weights is None or (isinstance(weights, str) and weights in registered_weights()):
        return load_model(demo_weights(weights), device=device)
    path = repo_path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"weights not found: {path} (give a registered name such as {DEMO_WEIGHTS!r} or "
            f"'demo-stm', or a checkpoint path)"
        )
    return load_model(path, device=device)


def carried_read(weights) -> ReadConfig:
    """The read the weights :func:`resolve_model` would load carry (manifest entry or checkpoint
    metadata, :func:`hmmnlab.weights.trained_read`), without loading them; a loaded model's
    ``default_read``."""
    if isinstance(weights, HMMN):
        return getattr(weights, "default_read", None) or ReadConfig()
    if weights is None or (isinstance(weights, str) and weights in registered_weights()):
        return trained_read(demo_weights(weights))[0]
    return trained_read(repo_path(weights))[0]
