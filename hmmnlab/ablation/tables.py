"""The ablation table: each read scored on its masks (:func:`score_table`), written to
``ablation.csv``, and presented (:func:`styled`, :func:`plot`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hmmnlab.ablation.grids import Grid
from hmmnlab.config import ReadConfig

#: Score and cost columns of an ablation table, after the read parameters.
RESULT_COLUMNS = ("J&F", "J", "F", "Seconds/frame", "Peak memory (MiB)", "note")

#: The cost columns of the tables and the keys of a cell's record that hold them.
COST_KEYS = {"Seconds/frame": "seconds_per_frame", "Peak memory (MiB)": "peak_memory_mib"}


def score_table(variants: Grid, names: list[str], notes: dict, *, davis_root: Path, out: Path,
                year: int, split: str, resolution: str) -> pd.DataFrame:  # fmt: skip
    """The ablation table from the cells' masks and records: each read scored on its masks (and
    its official CSVs written to ``out/<label>/``); a read refused on any sequence is a row with
    NaN scores and the first refusal (in sequence order) as its note."""
    from hmmnlab.evaluation.records import read_record
    from hmmnlab.evaluation.scoring import score, write_results

    rows = []
    for label, read in variants:
        folder = out / label
        row = {"label": label, **read.to_dict()}
        refusals = [notes[label, n] for n in names if notes.get((label, n))]
        if refusals:
            row.update({c: np.nan for c in RESULT_COLUMNS[:-1]}, note=refusals[0])
            rows.append(row)
            continue
        global_df, per_sequence_df = score(davis_root, folder, year=year, split=split,
                                           resolution=resolution, sequences=names)  # fmt: skip
        records = {n: read_record(folder, n) for n in names}
        sequence_of_row = per_sequence_df["Sequence"].str.rsplit("_", n=1).str[0]
        for column, key in COST_KEYS.items():  # as hmmnlab eval writes them
            per_sequence_df[column] = [records[s][key] for s in sequence_of_row]
        write_results(folder, global_df, per_sequence_df)
        row.update(
            {
                "J&F": float(global_df["J&F-Mean"].iloc[0]),
                "J": float(global_df["J-Mean"].iloc[0]),
                "F": float(global_df["F-Mean"].iloc[0]),
                "Seconds/frame": float(np.mean([records[n]["seconds_per_frame"] for n in names])),
                "Peak memory (MiB)": float(max(records[n]["peak_memory_mib"] for n in names)),
                "note": "",
            }
        )
        rows.append(row)
    columns = ["label", *ReadConfig().to_dict(), *RESULT_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


def write_table(table: pd.DataFrame, path: Path) -> None:
    """``table`` to ``path`` through a temporary file and a rename."""
    from hmmnlab.evaluation.records import atomic_path

    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False)


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
    """A matplotlib Figure (built without pyplot) of an ablation table: ``"bar"`` (J&F per read,
    best highlighted, refused reads marked) or ``"scatter"`` (J&F against seconds per frame)."""
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
