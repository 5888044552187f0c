"""Read ablations: the same weights evaluated with different memory reads, one row per read.

A *grid* is a list of ``(label, ReadConfig)`` pairs built with
:func:`~hmmnlab.model.reads.read_variant`; :func:`run` evaluates each read on a DAVIS-layout split
with :func:`~hmmnlab.evaluate.evaluate` into ``out/<label>/`` (resumable: finished sequences are not
segmented again unless the read behind a label changed) and returns a table whose columns are the
read's flat parameters (``ReadConfig.to_dict()``) followed by the scores and costs::

    label | variant fine guidance mem_every ... | J&F  J  F | Seconds/frame  Peak memory (MiB) | note

``J&F``, ``J`` and ``F`` are the DAVIS means over objects. A read that refuses to run (a dense fine
read whose chunk budget ``ReadConfig.dense_chunk_mib`` is below one query position) is kept as a row with NaN scores
and the reason in ``note``. :func:`styled` and :func:`plot` present the table;
:func:`short_davis` writes a copy of a split cut to its first frames, for quick runs;
:func:`resolve_model` turns a ``weights`` argument (a model, a registered name or a path) into a model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from hmmnlab.config import ReadConfig
from hmmnlab.model.reads import read_variant

#: Default weights: the demo model trained by hmmnlab on synthetic videos.
DEMO_WEIGHTS = "demo"  # the registered name of the bundled demo weights

#: Score and cost columns of an ablation table, after the read parameters.
RESULT_COLUMNS = ("J&F", "J", "F", "Seconds/frame", "Peak memory (MiB)", "note")

Grid = list[tuple[str, ReadConfig]]


def quick_grid() -> Grid:
    """Four reads for notebooks and CI: the r4 kernels (stm, kmn, hmmn) and hmmn without its
    fine reads (the "no hierarchy" ablation)."""
    return [
        ("stm", read_variant("stm")),
        ("kmn", read_variant("kmn")),
        ("hmmn", read_variant("hmmn")),
        ("hmmn-fine-none", read_variant("hmmn", fine="none")),
    ]


def default_grid() -> Grid:
    """The full grid: every r4 kernel; fine reads top-k / dense / none; k = 8, 16, 32 (the
    default), 64; two other kernel widths; two other memory intervals. Everything not named in a
    label is the authors' default (``ReadConfig()``)."""
    grid = [
        ("stm", read_variant("stm")),
        ("kmn", read_variant("kmn")),
        ("hmmn", read_variant("hmmn")),
        ("hmmn-paper", read_variant("hmmn-paper")),
        ("hmmn-fine-dense", read_variant("hmmn", fine="dense")),
        ("hmmn-fine-none", read_variant("hmmn", fine="none")),
        ("stm-fine-dense", read_variant("stm", fine="dense")),
    ]
    grid += [(f"hmmn-k{k}", read_variant("hmmn", topk_r3=k)) for k in (8, 16, 64)]
    grid += [(f"hmmn-sigma{s:g}", read_variant("hmmn", sigma=s)) for s in (1.5, 6.0)]
    grid += [(f"hmmn-every{m}", read_variant("hmmn", mem_every=m)) for m in (2, 10)]
    return grid


def short_davis(
    davis_root: str | Path,
    out: str | Path,
    *,
    frames: int,
    start: int = 0,
    sequences: list[str] | None = None,
    year: int = 2017,
    split: str = "val",
    resolution: str = "480p",
) -> Path:
    """Copy ``frames`` frames and masks from frame ``start`` on of a split's sequences into a new
    DAVIS-layout folder ``out`` (same split name) and return it: a quick version of a benchmark.
    With ``start > 0`` the mask of frame ``start`` becomes the given first mask (every frame of a
    sequence must then be annotated, as in the samples)."""
    from hmmnlab.data.davis import DavisDataset

    if frames < 3:
        raise ValueError(f"frames must be >= 3 (the first and last are not scored), got {frames}")
    dataset = DavisDataset(repo_path(davis_root), year=year, split=split, resolution=resolution)
    names = sequences or dataset.sequences
    unknown = [n for n in names if n not in dataset.sequences]
    if unknown:
        raise ValueError(f"sequences not in the {split} split of {davis_root}: {unknown[:5]}")
    out = Path(out)
    for name in names:
        sequence = dataset[name]
        if start and sequence.mask_names != sequence.frame_names:
            raise ValueError(
                f"start={start} needs a mask for every frame, but {name} annotates "
                f"{len(sequence.mask_names)} of {len(sequence)} frames"
            )
        if start + 3 > len(sequence):
            raise ValueError(f"{name} has {len(sequence)} frames: too few to start at {start}")
        for kind, paths in (
            ("JPEGImages", sequence.frame_paths),
            ("Annotations", sequence.mask_paths),
        ):
            folder = out / kind / resolution / name
            folder.mkdir(parents=True, exist_ok=True)
            for path in paths[start : start + frames]:
                if not (folder / path.name).is_file():
                    shutil.copyfile(path, folder / path.name)
    split_file = out / "ImageSets" / str(year) / f"{split}.txt"
    split_file.parent.mkdir(parents=True, exist_ok=True)
    split_file.write_text("".join(f"{n}\n" for n in names))
    return out


def repo_path(path: str | Path) -> Path:
    """``path`` as given when it exists, else relative to the repository root (so the defaults
    ``data_samples`` works from a notebook folder of a source checkout)."""
    path = Path(path)
    repo = Path(__file__).resolve().parents[1] / path
    return path if path.exists() or path.is_absolute() or not repo.exists() else repo


def _stale(folder: Path, read: ReadConfig) -> bool:
    """True when ``folder`` holds sequences segmented with another read than ``read``."""
    for path in (folder / "timing").glob("*.json"):
        if json.loads(path.read_text()).get("read") != read.to_dict():
            return True
    return False


def resolve_model(weights, device="cpu"):
    """The model ``weights`` names: an :class:`~hmmnlab.model.HMMN` as given; None or a registered
    name (``"demo"``, ``"demo-stm"``): those weights (None: ``$HMMNLAB_DEMO_WEIGHTS`` if set, else
    :data:`DEMO_WEIGHTS`); else a checkpoint path (relative paths also from the repository root),
    loaded on ``device``. A missing file is a FileNotFoundError."""
    from hmmnlab.model import HMMN
    from hmmnlab.weights import load_model, registered_weights

    if isinstance(weights, HMMN):
        return weights
    if weights is None or (isinstance(weights, str) and weights in registered_weights()):
        from hmmnlab.lesson import demo_weights

        return load_model(demo_weights(weights), device=device)
    path = repo_path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"weights not found: {path} (give a registered name such as {DEMO_WEIGHTS!r} or "
            f"'demo-stm', or a checkpoint path)"
        )
    return load_model(path, device=device)


def run(
    davis_root: str | Path = "data_samples",
    weights=None,
    *,
    variants: Grid | None = None,
    year: int = 2017,
    split: str = "val",
    sequences: list[str] | None = None,
    out: str | Path | None = None,
    device: str = "cpu",
    overlays: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Evaluate every read of ``variants`` (default :func:`default_grid`) and return the ablation
    table, one row per read (see the module docstring for its columns).

    weights: a checkpoint path or an already loaded :class:`~hmmnlab.model.HMMN`; None: the demo
    weights (``$HMMNLAB_DEMO_WEIGHTS`` if set, else :data:`DEMO_WEIGHTS`).
    out: where each read's masks and CSVs go, ``out/<label>/`` (default ``out/ablation``); runs
    resume from what is there. overlays: also write overlay frames and MP4s per read.
    """
    from tqdm import tqdm

    from hmmnlab.data.davis import DavisDataset
    from hmmnlab.evaluate import evaluate
    from hmmnlab.inference import resolve_device
    from hmmnlab.scoring import write_results

    davis_root = repo_path(davis_root)
    variants = default_grid() if variants is None else list(variants)
    labels = [label for label, _ in variants]
    if len(set(labels)) != len(labels):
        raise ValueError(f"ablation labels must be unique, got {labels}")
    bad = [label for label in labels if not label or "/" in label or label.startswith(".")]
    if bad:
        raise ValueError(f"labels name folders: no '/', no leading '.', not empty; got {bad}")
    dataset = DavisDataset(davis_root, year=year, split=split)  # fails early on a bad root/split
    unknown = [n for n in sequences or () if n not in dataset.sequences]
    if unknown:
        raise ValueError(f"sequences not in the {split} split of {davis_root}: {unknown[:5]}")
    device = resolve_device(device)
    model = resolve_model(weights, device)
    out = Path("out/ablation" if out is None else out)
    rows = []
    for label, read in tqdm(variants, desc="reads", unit="read", disable=not progress):
        folder = out / label
        row = {"label": label, **read.to_dict()}
        try:
            global_df, per_sequence_df = evaluate(
                model, davis_root, folder, year=year, split=split, read=read,
                sequences=sequences, device=device, overwrite=_stale(folder, read),
                overlays=overlays, progress=progress,
            )  # fmt: skip
        except ValueError as err:  # e.g. a dense read that cannot fit its budget
            row.update({c: np.nan for c in RESULT_COLUMNS[:-1]}, note=f"refused: {err}")
            rows.append(row)
            continue
        write_results(folder, global_df, per_sequence_df)
        per_sequence = per_sequence_df.assign(
            seq=per_sequence_df["Sequence"].str.rsplit("_", n=1).str[0]
        ).drop_duplicates("seq")
        row.update(
            {
                "J&F": float(global_df["J&F-Mean"].iloc[0]),
                "J": float(global_df["J-Mean"].iloc[0]),
                "F": float(global_df["F-Mean"].iloc[0]),
                "Seconds/frame": float(per_sequence["Seconds/frame"].mean()),
                "Peak memory (MiB)": float(per_sequence["Peak memory (MiB)"].max()),
                "note": "",
            }
        )
        rows.append(row)
    columns = ["label", *ReadConfig().to_dict(), *RESULT_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


def varying_columns(df: pd.DataFrame) -> list[str]:
    """The read parameters that differ between rows (the others are the same everywhere)."""
    params = [c for c in ReadConfig().to_dict() if c in df.columns]
    return [c for c in params if df[c].astype(str).nunique() > 1]


def styled(df: pd.DataFrame, *, all_params: bool = False):
    """A pandas Styler of an ablation table: the best J&F (and J, F) in bold green, the fastest
    read in bold; refused rows greyed. Only the parameters that vary are shown unless
    ``all_params``."""
    params = list(ReadConfig().to_dict()) if all_params else varying_columns(df)
    shown = df[["label", *params, *RESULT_COLUMNS]]
    formats = {c: "{:g}" for c in params if pd.api.types.is_float_dtype(shown[c])}
    formats.update({c: "{:.3f}" for c in ("J&F", "J", "F")})
    formats.update({"Seconds/frame": "{:.3f}", "Peak memory (MiB)": "{:.0f}"})
    refused = shown["J&F"].isna()

    def grey(row):
        return ["color: #999" if refused[row.name] else "" for _ in row]

    return (
        shown.style.format(formats, na_rep="-")
        .highlight_max(subset=["J&F", "J", "F"], props="font-weight: bold; color: #1a7f37")
        .highlight_min(subset=["Seconds/frame"], props="font-weight: bold")
        .apply(grey, axis=1)
        .hide(axis="index")
    )


def plot(df: pd.DataFrame, *, kind: str = "bar"):
    """A matplotlib Figure (built without pyplot) of an ablation table: ``"bar"`` (J&F per read, best highlighted,
    refused reads marked) or ``"scatter"`` (J&F against seconds per frame)."""
    from matplotlib.figure import Figure

    if kind not in ("bar", "scatter"):
        raise ValueError(f"kind must be 'bar' or 'scatter', got {kind!r}")
    scores = df["J&F"].to_numpy(dtype=float)
    best = np.nanargmax(scores) if np.isfinite(scores).any() else -1
    if kind == "bar":
        fig = Figure(figsize=(max(4.0, 0.55 * len(df) + 1.5), 3.2), layout="constrained")
        ax = fig.subplots()
        colours = ["#1a7f37" if i == best else "#4c72b0" for i in range(len(df))]
        ax.bar(range(len(df)), np.nan_to_num(scores), color=colours)
        for i, value in enumerate(scores):
            text = "refused" if np.isnan(value) else f"{value:.2f}"
            ax.text(i, 0 if np.isnan(value) else value, text, ha="center", va="bottom", fontsize=7,
                    rotation=90 if np.isnan(value) else 0)  # fmt: skip
        ax.set_xticks(range(len(df)), df["label"], rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("J&F (mean over objects)")
        ax.set_ylim(0, min(1.0, np.nanmax(np.append(scores, 0.1)) * 1.15 + 0.02))
        ax.set_title("Memory reads, same weights")
        return fig
    fig = Figure(figsize=(5, 3.6), layout="constrained")
    ax = fig.subplots()
    ok = np.isfinite(scores)
    seconds = df["Seconds/frame"].to_numpy(dtype=float)
    ax.scatter(seconds[ok], scores[ok], color="#4c72b0")
    if best >= 0:
        ax.scatter([seconds[best]], [scores[best]], color="#1a7f37", zorder=3)
    for x, y, label in zip(seconds[ok], scores[ok], df["label"][ok], strict=True):
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.set_xlabel("seconds per frame")
    ax.set_ylabel("J&F (mean over objects)")
    ax.set_title("Accuracy against speed")
    return fig
