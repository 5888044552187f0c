"""``hmmnlab segment``: segment a folder of frames from its first frame's mask.

The command's options are declared in :mod:`hmmnlab.commands.cli` and
:mod:`hmmnlab.commands.segment` runs it (and checks the inputs of every command that runs a model on
one video); this module holds the work: :func:`segment_folder` and the checks on its output paths.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from hmmnlab.config import ReadConfig
from hmmnlab.data.frames import FrameFolder
from hmmnlab.data.palette import write_label_png
from hmmnlab.evaluation.records import (
    atomic_path,
    check_output_dir,
    check_output_file,
    check_outside,
)
from hmmnlab.inference import propagate
from hmmnlab.model import HMMN


def check_output_folder(
    out: Path, frames: Path, *, first_mask: Path | None = None, overwrite: bool = False
) -> None:
    """Refuse an output folder that would mix outputs with input or destroy files: inside (or equal
    to) the frames folder, an existing file, a folder that already holds PNGs (unless
    ``overwrite``), or the folder of the first mask."""
    check_output_dir(out, "--out")
    check_outside(out, "--out", [("--frames", frames)])
    out = out.resolve()
    if first_mask is not None and first_mask.resolve().parent == out:
        raise ValueError(
            f"--out {out} holds the --first-mask {first_mask.name}: its masks would overwrite it; "
            "choose another folder"
        )
    if not overwrite and out.is_dir():
        pngs = sorted(p.name for p in out.glob("*.png"))
        if pngs:
            raise ValueError(
                f"--out {out} already holds {len(pngs)} PNG file(s) ({', '.join(pngs[:3])}"
                f"{', ...' if len(pngs) > 3 else ''}); give --overwrite to replace them or choose "
                "an empty folder"
            )


def check_npz_path(path: Path, what: str, *, overwrite: bool = False) -> None:
    """Refuse an .npz output path that numpy would change (no .npz suffix), cannot write, or that
    exists (unless ``overwrite``)."""
    if path.name == "" or path.suffix.lower() != ".npz" or path.name.startswith("."):
        raise ValueError(f"{what} {path}: expected a file name ending in .npz, e.g. probs.npz")
    check_output_file(path, what, overwrite=overwrite)


def save_npz(path: str | Path, **arrays) -> None:
    """``np.savez_compressed`` through a temporary file beside ``path`` and a rename: a full disk
    leaves no truncated .npz (and an existing file as it was)."""
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def segment_folder(
    model: HMMN,
    frames: FrameFolder,
    first_labels: np.ndarray,
    out: str | Path,
    *,
    read: ReadConfig | None = None,
    device=None,
    amp: bool = False,
    dtype: str | None = None,  # or "float32", "bfloat16"; None: hmmnlab.precision's default
    save_probs: str | Path | None = None,
    progress: bool = True,
) -> list[Path]:
    """Segment ``frames`` and write one palette PNG per frame (named by the frames' stems) into
    ``out``; with ``save_probs`` also an .npz whose ``probs`` is T x (K+1) x H x W float32.
    Returns the written PNG paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written, probs = [], None
    results = propagate(model, frames, first_labels, read=read, device=device, amp=amp, dtype=dtype)
    for result in tqdm(
        results, total=len(frames), desc="segment", unit="frame", disable=not progress
    ):
        path = out / f"{frames.stems[result.index]}.png"
        write_label_png(path, result.labels.cpu().numpy())
        written.append(path)
        if save_probs is not None:
            if probs is None:
                probs = np.zeros((len(frames), *result.probs.shape), dtype=np.float32)
            probs[result.index] = result.probs.float().cpu().numpy()
    if save_probs is not None:
        save_npz(save_probs, probs=probs, object_ids=np.array(result.object_ids))
    return written
