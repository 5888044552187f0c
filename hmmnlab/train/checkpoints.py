"""The files of a training run: ``state.pth`` (what ``--resume`` reads), ``best.pth`` (a float16
hmmnlab checkpoint), ``log.csv``; saving and loading them, the checks before a resume, and the
run's state between steps (:class:`RunState`) that they keep.

Every file is written through a temporary file and a rename
(:func:`hmmnlab.evaluation.records.atomic_path`), so a full disk or a killed run leaves the previous
file intact.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from hmmnlab.config import ReadConfig
from hmmnlab.evaluation.records import atomic_path, write_atomically
from hmmnlab.model import HMMN
from hmmnlab.train.config import TrainConfig
from hmmnlab.weights import FORMAT, load_checkpoint

STATE_FILE = "state.pth"
BEST_FILE = "best.pth"
LOG_FILE = "log.csv"


# The read fields that weights carry: those that shape the r4 affinity the training taught. The
# others (mem_every, max_memory_frames, topk, dense_chunk_mib, ...) are budgets of a run, not of
# the weights.
CARRIED_READ_FIELDS = ("sigma", "sigma_growth", "temperature", "window", "guidance")


def carried_read(training_read: dict | ReadConfig, variant: str) -> dict:
    """The ``read`` entry of weights trained with ``training_read`` (a ReadConfig or its dict):
    its :data:`CARRIED_READ_FIELDS` that differ from ``variant``'s registered defaults. The
    training read's variant must be ``variant``."""
    from hmmnlab.model.reads import read_variant

    read = training_read if isinstance(training_read, dict) else dataclasses.asdict(training_read)
    if read.get("variant", variant) != variant:
        raise ValueError(
            f"the run was trained with the {read['variant']!r} read, not {variant!r} (--read)"
        )
    defaults = dataclasses.asdict(read_variant(variant))
    return {k: read[k] for k in CARRIED_READ_FIELDS if k in read and read[k] != defaults[k]}


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
    """``torch.save`` through a temporary file and a rename
    (:func:`hmmnlab.evaluation.records.atomic_path`): a full disk leaves the previous file intact,
    no temporary file, and a message naming it."""
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


def _stream_kind(settings: dict) -> dict:
    if "loader_workers" not in settings:
        return settings
    return {**settings, "loader_workers": "per step" if settings["loader_workers"] else "shared"}


def check_resume(path: Path, state: dict, config: TrainConfig, model: HMMN) -> None:
    """Refuse to resume the run saved in ``state`` with settings that change it: every training
    setting but :data:`RESUMABLE_CHANGES`, and the model's configuration, must be the saved ones."""
    differ = []
    saved = state.get("train_config")
    if isinstance(saved, dict):
        asked = config.to_dict()
        # the number of loader workers changes no clip, one shared stream (0) against one stream
        # per step (1 or more) does
        saved, asked = _stream_kind(saved), _stream_kind(asked)
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
# A run's state between steps, and its files


@dataclass
class RunState:
    """What a training run carries from step to step, and the files that keep it: ``state.pth``
    (:meth:`resume`, :meth:`checkpoint`) and ``best.pth``."""

    config: TrainConfig
    out: Path
    model: HMMN
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator
    init: str | Path | None  # the weights a fresh run started from (recorded in best.pth)
    validates: bool  # whether the run has held-out sets
    step: int = 0
    best: dict = field(default_factory=dict)  # best validation scores seen
    elapsed: float = 0.0  # seconds of training, over every call that resumed it
    saved: dict = field(default_factory=dict)  # file -> the step it holds, for messages

    def resume(self) -> None:
        """Weights, optimizer, step, scores and random states of the run's ``state.pth``, after
        :func:`check_resume`."""
        path = self.out / STATE_FILE
        state = load_state(path)
        check_resume(path, state, self.config, self.model)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.best = state["step"], state.get("best", {})
        self.elapsed = state.get("elapsed_s", 0.0)
        self.rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        self.saved[STATE_FILE] = self.step

    def kept(self) -> str:
        """The files saved so far and their steps, for a message."""
        kept = ", ".join(f"{self.out / name} (step {at})" for name, at in self.saved.items())
        return kept or "no checkpoint (none was written before)"

    def read_meta(self) -> dict:
        """What ``best.pth`` says of its read, as exported weights do: every command then runs it
        with the read it was trained with (:func:`hmmnlab.weights.trained_read`)."""
        variant = self.config.read.variant
        return {"trained_read": variant, "read": carried_read(self.config.read, variant)}

    def checkpoint(self, scores: dict | None = None) -> None:
        """``best.pth`` when ``scores`` beat the best (without validation: at the last step),
        then ``state.pth``."""
        config, step = self.config, self.step
        if scores:
            mean_jf = float(np.mean([v for k, v in scores.items() if k.endswith("_JF")]))
            if not self.best or mean_jf > self.best["mean_JF"]:
                self.best = {"step": step, "mean_JF": mean_jf, **scores}
                meta = {
                    "step": step,
                    "train_config": config.to_dict(),
                    "scores": scores,
                    "source": "hmmnlab train",
                    "init": None if self.init is None else str(self.init),
                    **self.read_meta(),
                }
                save_half_checkpoint(self.model, self.out / BEST_FILE, meta=meta)
                self.saved[BEST_FILE] = step
        elif not self.validates and step == config.steps:  # no validation: the final weights
            meta = {"step": step, "train_config": config.to_dict(), "source": "hmmnlab train",
                    **self.read_meta()}  # fmt: skip
            save_half_checkpoint(self.model, self.out / BEST_FILE, meta=meta)
            self.saved[BEST_FILE] = step
        self.saved[STATE_FILE] = step
        save_state(
            self.out / STATE_FILE,
            self.model,
            self.optimizer,
            step,
            self.rng,
            {"best": self.best, "elapsed_s": self.elapsed, "train_config": config.to_dict()},
        )


class RunLog:
    """``log.csv``: a header of the loss and validation columns, then one row per logged step.

    On a resume the rows after ``step`` (logged by a run killed since) are dropped first; only the
    main process (``main``) writes."""

    def __init__(self, path: Path, val_sets: Iterable[str], *, main: bool, resume: bool, step: int):
        self.path = path
        self.columns = ["step", "elapsed_s", "lr", "max_skip", "stage", "loss"]
        self.columns += [f"{name}_{m}" for name in val_sets for m in ("J", "F", "JF")]
        if main and resume:  # rows after the checkpoint (a run killed since) are logged again
            truncate_log(path, step)
        if main and not (resume and path.is_file()):
            with path.open("w", newline="") as fh:
                csv.writer(fh).writerow(self.columns)

    def write(self, row: dict) -> None:
        with self.path.open("a", newline="") as fh:
            csv.writer(fh).writerow([_fmt(row.get(c, "")) for c in self.columns])


def _fmt(value: object) -> object:
    return f"{value:.6g}" if isinstance(value, float) else value
