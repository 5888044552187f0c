"""Score predicted masks against a DAVIS split, like the official semi-supervised evaluation.

Predictions are one folder per sequence of label-map PNGs named like the annotations::

    <pred_dir>/<sequence>/00001.png ...   palette PNGs: 0 = background, k = object k

Only the frames the official evaluation scores are read: every annotated frame but the first and
the last. DAVIS 2016 masks (ground truth and prediction) are read as one object: any non-zero pixel.
DAVIS 2017 predictions must use labels 0..K, with K the largest label of the sequence's first
annotation.

:func:`score` returns two pandas DataFrames in the official toolkit's layout, :func:`write_results`
writes them as ``global_results.csv`` and ``per-sequence_results.csv``, and
:mod:`hmmnlab.commands.score` runs ``hmmnlab score``. pandas, tqdm, OpenCV and the metrics are
imported when a score is computed, not when this module is imported, so the command line starts
quickly.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from hmmnlab.data.davis import listing

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from hmmnlab.data.davis import DavisSequence
    from hmmnlab.evaluation.metrics import SequenceScores

#: Columns of ``global_results.csv``, in the official order.
GLOBAL_COLUMNS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")

#: Columns of ``per-sequence_results.csv``: one row per object, named ``<sequence>_<object id>``.
PER_SEQUENCE_COLUMNS = ("Sequence", "J-Mean", "F-Mean")

#: File names written by :func:`write_results` (the official names).
GLOBAL_CSV = "global_results.csv"
PER_SEQUENCE_CSV = "per-sequence_results.csv"

#: The official toolkit writes its CSVs with three decimals.
OFFICIAL_FLOAT_FORMAT = "%.3f"

# --- one sequence --------------------------------------------------------------------------------


def scored_frame_names(sequence: DavisSequence) -> tuple[str, ...]:
    """Names of the frames the official semi-supervised evaluation scores: all annotated frames
    but the first and the last."""
    names = sequence.mask_names
    if len(names) < 3:
        raise ValueError(
            f"sequence {sequence.name!r}: expected at least 3 annotated frames (the first and the "
            f"last are not scored), found {len(names)}"
        )
    return names[1:-1]


def missing_predictions(sequence: DavisSequence, pred_dir: str | Path) -> list[str]:
    """``<sequence>/<frame>.png`` of every scored frame that has no prediction file."""
    seq_dir = Path(pred_dir) / sequence.name
    return [
        f"{sequence.name}/{name}.png"
        for name in scored_frame_names(sequence)
        if not (seq_dir / f"{name}.png").is_file()
    ]


def _read_prediction(
    path: Path, *, year: int, shape: tuple[int, int], num_objects: int, allow_missing: bool
) -> np.ndarray:
    """H x W uint8 label map of a prediction file (all zero if missing and allowed)."""
    import numpy as np

    from hmmnlab.data.palette import read_label_png
    from hmmnlab.evaluation.metrics import check_prediction_labels

    if not path.is_file():
        if allow_missing:
            return np.zeros(shape, dtype=np.uint8)
        raise FileNotFoundError(f"prediction not found: {path}")
    pred = read_label_png(path, binary=True if year == 2016 else None)
    if pred.shape != shape:
        raise ValueError(
            f"{path}: expected a prediction of H x W = {shape[0]} x {shape[1]} "
            f"(as the annotation), found {pred.shape[0]} x {pred.shape[1]}"
        )
    check_prediction_labels(pred, num_objects, where=str(path))
    return pred


def score_sequence(
    sequence: DavisSequence, pred_dir: str | Path, *, allow_missing: bool = False
) -> SequenceScores:
    """Per-frame J and F of every object of one sequence, read frame by frame from PNG files.

    Args:
        sequence: the ground truth (from :class:`hmmnlab.data.davis.DavisDataset`).
        pred_dir: the folder holding one sub-folder of PNGs per sequence.
        allow_missing: count a missing prediction file as an empty mask instead of failing.
    """
    from hmmnlab.evaluation.metrics import SequenceScores, object_scores

    names = scored_frame_names(sequence)
    num_objects = sequence.num_objects
    shape = sequence.first_mask().shape
    seq_dir = Path(pred_dir) / sequence.name
    index_of = {name: i for i, name in enumerate(sequence.mask_names)}

    def gt_frames() -> Iterator[np.ndarray]:
        for name in names:
            yield sequence.mask(index_of[name])

    def pred_frames() -> Iterator[np.ndarray]:
        for name in names:
            yield _read_prediction(
                seq_dir / f"{name}.png",
                year=sequence.year,
                shape=shape,
                num_objects=num_objects,
                allow_missing=allow_missing,
            )

    j, f = object_scores(gt_frames(), pred_frames(), num_objects)
    return SequenceScores(name=sequence.name, frame_names=names, j=j, f=f)


# --- a whole split -------------------------------------------------------------------------------


def check_unique_names(names: list[str]) -> list[str]:
    """``names`` as a list, or ValueError naming the sequences listed more than once (each would
    count twice in the global numbers)."""
    names = list(names)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"expected each sequence once, found {listing(repeated)} listed more than once"
        )
    return names


def results_tables(scores: list[SequenceScores]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The official result tables from per-sequence scores.

    Returns:
        (global_df, per_sequence_df): ``global_df`` has one row and the columns
        :data:`GLOBAL_COLUMNS`; ``per_sequence_df`` has one row per object with the columns
        :data:`PER_SEQUENCE_COLUMNS`, in sequence order then object order.
    """
    import pandas as pd

    from hmmnlab.evaluation.metrics import global_statistics

    global_df = pd.DataFrame([global_statistics(scores)], columns=list(GLOBAL_COLUMNS))
    rows = [
        (object_name, j_stats.mean, f_stats.mean)
        for seq in scores
        for object_name, (j_stats, f_stats) in zip(seq.object_names, seq.statistics(), strict=True)
    ]
    per_sequence_df = pd.DataFrame(rows, columns=list(PER_SEQUENCE_COLUMNS))
    return global_df, per_sequence_df


def score(
    davis_root: str | Path,
    pred_dir: str | Path,
    *,
    year: int,
    split: str,
    resolution: str = "480p",
    sequences: list[str] | None = None,
    allow_missing: bool = False,
    workers: int = 1,
    progress: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score a folder of predictions on a DAVIS split (official semi-supervised evaluation).

    Args:
        davis_root: the DAVIS folder (``Annotations`` and ``ImageSets``; frames are not read).
        pred_dir: one sub-folder of PNGs per sequence, named like the annotations.
        year: 2016 or 2017.
        split: e.g. ``"val"``.
        resolution: the folder name under ``Annotations``.
        sequences: score only these sequences of the split (default: all).
        allow_missing: count missing prediction files (or folders) as empty masks; otherwise a
            missing file is an error that names the first few.
        workers: number of processes; sequences are shared among them. 1 scores in this process.
        progress: show a tqdm progress bar over sequences.

    Returns:
        (global_df, per_sequence_df) as :func:`results_tables` describes.
    """
    from hmmnlab.data.davis import DavisDataset

    if workers < 1:
        raise ValueError(f"workers must be at least 1, found {workers}")
    # Scoring reads the annotations only, as the official toolkit does: no JPEGImages needed.
    dataset = DavisDataset(
        davis_root, year=year, split=split, resolution=resolution, frames=False,
        sequences=None if sequences is None else check_unique_names(sequences),
    )  # fmt: skip
    names = dataset.sequences if sequences is None else list(sequences)
    unknown = [name for name in names if name not in dataset.sequences]
    if unknown:
        raise ValueError(
            f"sequence(s) not in DAVIS {dataset.year} {split}: {listing(unknown)}; "
            f"the split has: {listing(dataset.sequences)}"
        )
    if not names:
        raise ValueError("expected at least one sequence to score, found none")
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"prediction folder not found: {pred_dir}")
    selected = [dataset[name] for name in names]
    if not allow_missing:
        missing = [path for seq in selected for path in missing_predictions(seq, pred_dir)]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} prediction PNG(s) missing in {pred_dir}: {listing(missing)} "
                f"(allow_missing=True / --allow-missing counts them as empty masks)"
            )
    else:  # counted as empty masks, and said so: a score of 0 must not hide a wrong --pred
        missing = [path for seq in selected for path in missing_predictions(seq, pred_dir)]
        scored = sum(len(scored_frame_names(seq)) for seq in selected)
        if missing and len(missing) == scored:
            raise FileNotFoundError(
                f"every one of the {scored} prediction PNG(s) is missing in {pred_dir} (e.g. "
                f"{listing(missing)}): nothing to score, even with --allow-missing; is the "
                "prediction folder right?"
            )
        if missing:
            print(
                f"warning: {len(missing)} of {scored} prediction PNG(s) missing in {pred_dir} "
                f"({listing(missing)}), counted as empty masks",
                file=sys.stderr,
            )
    scores = _score_all(
        selected, pred_dir, allow_missing=allow_missing, workers=workers, progress=progress
    )
    return results_tables(scores)


def _score_all(
    selected: list[DavisSequence],
    pred_dir: Path,
    *,
    allow_missing: bool,
    workers: int,
    progress: bool,
) -> list[SequenceScores]:
    """Score the sequences in this process or in ``workers`` processes, keeping their order."""
    from tqdm import tqdm

    bar = tqdm(total=len(selected), desc="scoring", unit="seq", disable=not progress)
    if workers == 1:
        scores = []
        with bar:  # closed (ending its line) before an error is printed
            for seq in selected:
                bar.set_postfix_str(seq.name)
                scores.append(score_sequence(seq, pred_dir, allow_missing=allow_missing))
                bar.update()
        return scores

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # "spawn" starts clean interpreters: safe whatever threads (OpenCV, torch) this process runs.
    context = multiprocessing.get_context("spawn")
    results: dict[int, SequenceScores] = {}
    with bar, ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {
            pool.submit(score_sequence, seq, pred_dir, allow_missing=allow_missing): i
            for i, seq in enumerate(selected)
        }
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.update()
    return [results[i] for i in range(len(selected))]


def write_results(
    out_dir: str | Path,
    global_df: pd.DataFrame,
    per_sequence_df: pd.DataFrame,
    *,
    float_format: str | None = OFFICIAL_FLOAT_FORMAT,
) -> tuple[Path, Path]:
    """Write ``global_results.csv`` and ``per-sequence_results.csv`` into ``out_dir``.

    The default float format ``"%.3f"`` is the one the official toolkit writes, so the files can be
    compared with published ones; pass ``float_format=None`` for full precision (the DataFrames
    returned by :func:`score` always have it).

    Returns:
        The paths of the two files.
    """
    from hmmnlab.evaluation.records import atomic_path

    out_dir = Path(out_dir)
    global_path = out_dir / GLOBAL_CSV
    per_sequence_path = out_dir / PER_SEQUENCE_CSV
    for df, path in ((global_df, global_path), (per_sequence_df, per_sequence_path)):
        with atomic_path(path) as temporary:  # never a half-written table
            df.to_csv(temporary, index=False, float_format=float_format)
    return global_path, per_sequence_path
