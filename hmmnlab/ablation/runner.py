"""Running an ablation grid: :func:`run` segments every sequence with every read, one cell per
(read, sequence), here or as Ray tasks, resuming cell by cell, then scores each read into the
table (``hmmnlab ablate``: :mod:`hmmnlab.commands.ablate`)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pandas as pd

from hmmnlab.ablation.cells import Cell, run_cell
from hmmnlab.ablation.grids import Grid, default_grid
from hmmnlab.ablation.ray_tasks import _ray_device, _run_on_ray, connect_ray, import_ray
from hmmnlab.ablation.tables import score_table, write_table
from hmmnlab.data.davis import repo_path
from hmmnlab.weights import carried_read, resolve_model

#: How :func:`run` executes the grid's cells: one after the other in this process, or as Ray tasks.
EXECUTORS = ("local", "ray")

#: The table :func:`run` writes into its output folder.
TABLE_NAME = "ablation.csv"


def run(
    davis_root: str | Path = "data_samples",
    weights=None,
    *,
    variants: Grid | None = None,
    year: int = 2017,
    split: str = "val",
    resolution: str = "480p",
    sequences: list[str] | None = None,
    out: str | Path | None = None,
    device: str | None = "cpu",
    amp: bool = False,
    dtype: str | None = None,  # float32, bfloat16; None: hmmnlab.precision's default
    overlays: bool = False,
    progress: bool = True,
    threads: int | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    num_cpus: int | None = None,
    max_retries: int = 3,
) -> pd.DataFrame:
    """Evaluate every read of ``variants`` (default :func:`default_grid` from the read the weights
    carry) on every sequence, write
    the ablation table to ``out/ablation.csv`` and return it, one row per read (see the module
    docstring for its columns).

    The work is a grid of cells, one per (read, sequence) (:class:`Cell`, :func:`run_cell`); each
    cell writes its masks to ``out/<label>/<sequence>/`` and, last and atomically, its record (the
    settings that produced the masks) to ``out/<label>/timing/<sequence>.json``, the layout of
    ``hmmnlab eval``. Runs resume: a cell whose record holds the same settings (weights, model and
    read configuration, resolution, hmmnlab version) is not redone; a cell that was interrupted
    (its worker killed) has no record and is redone. Then each read is scored on its masks and
    ``out/<label>/`` gets the official CSVs. One run at a time may write to ``out`` (a lock file).

    weights: a checkpoint path or an already loaded :class:`~hmmnlab.model.HMMN`; None: the demo
    weights (``$HMMNLAB_DEMO_WEIGHTS`` if set, else :data:`DEMO_WEIGHTS`).
    out: the output folder (default ``out/ablation``). overlays: also write overlay frames and
    MP4s per read. device: ``cpu``, ``cuda[:N]``, or None for CUDA where present. threads: torch
    threads per cell (None: in this process, torch's setting; on Ray, 1).

    executor: ``"local"`` runs the cells one after the other in this process; ``"ray"`` submits
    each as a Ray task (``threads`` CPUs each, default 1, and one GPU each on CUDA) and collects
    them as they finish. With the same torch threads per cell, the masks, and so every score, are
    those of a local run (with other threads, float sums in another order can move a pixel).
    Ray: the running Ray instance if there is one, else the cluster at ``ray_address`` (e.g.
    ``"ray://head:10001"`` or ``"auto"``), else a local Ray started here (with ``num_cpus`` CPUs,
    default all) and stopped at the end. On a cluster, every node needs hmmnlab and the paths
    ``davis_root`` and ``out``. max_retries: how often Ray reruns a cell whose worker died; a
    cell that still fails is reported (a RuntimeError once the other cells have finished and been
    saved) and redone by the next run.
    """
    from hmmnlab.data.davis import DavisDataset
    from hmmnlab.evaluation.davis import read_folders
    from hmmnlab.evaluation.records import check_output_dir, check_outside, output_lock
    from hmmnlab.inference import resolve_device

    _check_executor(executor, threads)
    ray = import_ray() if executor == "ray" else None
    davis_root = repo_path(davis_root)
    default = variants is None  # the default grid, from the read the weights carry
    variants = default_grid() if default else list(variants)
    _check_labels([label for label, _ in variants])
    # fails early on a bad root or split
    dataset = DavisDataset(davis_root, year=year, split=split, resolution=resolution)
    names = _sequence_names(dataset, sequences, split=split, davis_root=davis_root)
    out = Path("out/ablation" if out is None else out)
    check_output_dir(out)  # never inside the dataset, however the path is spelled
    check_outside(out, "--out", read_folders(dataset, names))
    if ray is None:
        device = str(resolve_device(device))  # fails early on a missing GPU
    model = resolve_model(weights, "cpu" if ray else device)
    if default:
        variants = default_grid(carried_read(model))
    with contextlib.ExitStack() as stack:
        stack.enter_context(output_lock(out, command="ablate"))
        todo, finished = _pending(variants, names, dataset, out, model, resolution=resolution,
                                  overlays=overlays, amp=amp, dtype=dtype)  # fmt: skip
        if ray is not None and todo:
            if not ray.is_initialized():
                connect_ray(ray, ray_address, num_cpus=num_cpus)
                stack.callback(ray.shutdown)
            device = _ray_device(ray, device)
            threads = threads or 1  # the CPUs of each task
        cells = [Cell(label, read, name, folder, davis_root, year, split, resolution, settings,
                      device, amp, overlays, threads, progress=progress and ray is None, dtype=settings["dtype"])
                 for label, read, name, folder, settings in todo]  # fmt: skip
        notes = _run_cells(model, cells, finished, ray=ray, progress=progress,
                           max_retries=max_retries)  # fmt: skip
        table = score_table(variants, names, notes, davis_root=davis_root, out=out, year=year,
                       split=split, resolution=resolution)  # fmt: skip
        write_table(table, out / TABLE_NAME)
    return table


def _check_executor(executor: str, threads: int | None) -> None:
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be None or an int >= 1, got {threads!r}")


def _run_cells(model, cells: list[Cell], finished: int, *, ray, progress: bool, max_retries: int):
    """Run the cells here, one after the other, or as Ray tasks (``ray``: the Ray module), with
    one progress bar that starts at the ``finished`` cells; {(label, sequence): note}."""
    from tqdm import tqdm

    bar = tqdm(total=finished + len(cells), initial=finished, desc="cells", unit="cell",
               disable=not progress)  # fmt: skip
    with bar:
        if ray is not None:
            return _run_on_ray(ray, model, cells, bar, max_retries=max_retries)
        notes = {}
        for cell in cells:
            notes[cell.label, cell.sequence] = run_cell(model, cell)
            bar.update()
        return notes


def _check_labels(labels: list[str]) -> None:
    """The labels of a grid name folders: unique, not empty, no '/', no leading '.'."""
    if len(set(labels)) != len(labels):
        raise ValueError(f"ablation labels must be unique, got {labels}")
    bad = [label for label in labels if not label or "/" in label or label.startswith(".")]
    if bad:
        raise ValueError(f"labels name folders: no '/', no leading '.', not empty; got {bad}")


def _sequence_names(dataset, sequences: list[str] | None, *, split: str, davis_root: Path):
    """``sequences`` (None: every sequence of the split), each in the split, none twice."""
    unknown = [n for n in sequences or () if n not in dataset.sequences]
    if unknown:
        raise ValueError(f"sequences not in the {split} split of {davis_root}: {unknown[:5]}")
    names = list(sequences or dataset.sequences)
    if len(set(names)) != len(names):
        raise ValueError(f"sequences must be unique, got {names}")
    return names


def _pending(variants: Grid, names: list[str], dataset, out: Path, model, *, resolution: str,
             overlays: bool, amp: bool, dtype: str) -> tuple[list[tuple], int]:  # fmt: skip
    """The (label, read, sequence, folder, settings) of every cell without a finished record of
    the same settings, and how many cells are finished."""
    from hmmnlab.evaluation.davis import is_finished
    from hmmnlab.evaluation.records import run_settings

    todo, finished = [], 0
    for label, read in variants:
        folder = out / label
        settings = run_settings(
            model, read, resolution=resolution, overlays=overlays, amp=amp, dtype=dtype
        )
        for name in names:
            if is_finished(folder, dataset[name], settings):
                finished += 1
            else:
                todo.append((label, read, name, folder, settings))
    return todo, finished
