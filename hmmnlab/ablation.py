"""Read ablations: the same weights evaluated with different memory reads, one row per read.

A *grid* is a list of ``(label, ReadConfig)`` pairs built with
:func:`~hmmnlab.model.reads.read_variant`; :func:`run` segments every sequence of a DAVIS-layout
split with every read, one *cell* per (read, sequence), into ``out/<label>/`` (the layout of
``hmmnlab eval``), scores each read and returns a table whose columns are the read's flat
parameters (``ReadConfig.to_dict()``) followed by the scores and costs::

    label | variant fine guidance mem_every ... | J&F  J  F | Seconds/frame  Peak memory (MiB) | note

It also writes the table to ``out/ablation.csv``. ``J&F``, ``J`` and ``F`` are the DAVIS means over
objects. A read that refuses to run (a dense fine read whose chunk budget
``ReadConfig.dense_chunk_mib`` is below one query position) is kept as a row with NaN scores and the reason in ``note``.

Runs resume cell by cell: a cell's record (``out/<label>/timing/<sequence>.json``, written
atomically after its last mask, with the settings that produced the masks) marks it finished, so a
run that was stopped, or whose worker was killed, redoes only the cells without one. The cells run
in this process (``executor="local"``) or as Ray tasks (``executor="ray"``, the ``cluster`` extra:
``pip install "hmmnlab[cluster]"``); Ray schedules them, on this machine or on a cluster.
``hmmnlab ablate`` is the command line of :func:`run`.

:func:`styled` and :func:`plot` present the table; :func:`short_davis` writes a copy of a split cut
to its first frames, for quick runs; :func:`resolve_model` turns a ``weights`` argument (a model, a
registered name or a path) into a model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from dataclasses import dataclass
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


def variant_read(variant: str, base: ReadConfig | None = None, **changes) -> ReadConfig:
    """The read ``variant`` with ``changes``: from ``base`` when it is of that variant (the read the
    weights carry, e.g. ``demo``'s sigma 1.5 and temperature 10), else from the variant's registered
    defaults (:func:`~hmmnlab.model.reads.read_variant`)."""
    if base is not None and base.variant == variant:
        return dataclasses.replace(base, **changes)
    return read_variant(variant, **changes)


def quick_grid(base: ReadConfig | None = None) -> Grid:
    """Four reads for notebooks and CI: the r4 kernels (stm, kmn, hmmn) and hmmn without its
    fine reads (the "no hierarchy" ablation). ``base``: the read the weights carry; the reads of its
    variant start from it (:func:`variant_read`), so ``hmmn`` is the read ``demo`` was trained with."""
    return [
        ("stm", variant_read("stm", base)),
        ("kmn", variant_read("kmn", base)),
        ("hmmn", variant_read("hmmn", base)),
        ("hmmn-fine-none", variant_read("hmmn", base, fine="none")),
    ]


def default_grid(base: ReadConfig | None = None) -> Grid:
    """The full grid: every r4 kernel; fine reads top-k / dense / none; k = 8, 16, 32 (the
    default), 64; two other kernel widths; two other memory intervals. Everything not named in a
    label is the variant's default, or ``base``'s for reads of its variant (:func:`variant_read`)."""
    grid = [
        ("stm", variant_read("stm", base)),
        ("kmn", variant_read("kmn", base)),
        ("hmmn", variant_read("hmmn", base)),
        ("hmmn-paper", variant_read("hmmn-paper", base)),
        ("hmmn-fine-dense", variant_read("hmmn", base, fine="dense")),
        ("hmmn-fine-none", variant_read("hmmn", base, fine="none")),
        ("stm-fine-dense", variant_read("stm", base, fine="dense")),
    ]
    grid += [(f"hmmn-k{k}", variant_read("hmmn", base, topk_r3=k)) for k in (8, 16, 64)]
    grid += [(f"hmmn-sigma{s:g}", variant_read("hmmn", base, sigma=s)) for s in (1.5, 6.0)]
    grid += [(f"hmmn-every{m}", variant_read("hmmn", base, mem_every=m)) for m in (2, 10)]
    return grid


def named_grid(names: list[str], base: ReadConfig | None = None) -> Grid:
    """The reads called ``names``, each a label of :func:`default_grid` (``hmmn-k8``,
    ``hmmn-fine-none``, ...) or a registered read variant (``stm``, ``kmn``, ``hmmn``, or one
    registered at run time); ``["all"]`` is the whole default grid. ``base``: as for
    :func:`default_grid`."""
    from hmmnlab.model.reads import KERNELS

    known = dict(default_grid(base))
    if list(names) == ["all"]:
        return list(known.items())
    grid = []
    for name in names:
        if name in known:
            grid.append((name, known[name]))
        elif name in KERNELS:
            grid.append((name, variant_read(name, base)))
        else:
            raise ValueError(
                f"unknown read {name!r}: expected a label of the default grid "
                f"({', '.join(known)}), a registered read variant ({', '.join(KERNELS)}) or all"
            )
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


def carried_read(weights) -> ReadConfig:
    """The read the weights :func:`resolve_model` would load carry (manifest entry or checkpoint
    metadata, :func:`hmmnlab.weights.trained_read`), without loading them; a loaded model's
    ``default_read``."""
    from hmmnlab.model import HMMN
    from hmmnlab.weights import registered_weights, trained_read

    if isinstance(weights, HMMN):
        return getattr(weights, "default_read", None) or ReadConfig()
    if weights is None or (isinstance(weights, str) and weights in registered_weights()):
        from hmmnlab.lesson import demo_weights

        return trained_read(demo_weights(weights))[0]
    return trained_read(repo_path(weights))[0]


#: How :func:`run` executes the grid's cells: one after the other in this process, or as Ray tasks.
EXECUTORS = ("local", "ray")

#: The table :func:`run` writes into its output folder.
TABLE_NAME = "ablation.csv"

#: The cost columns of the tables and the keys of a cell's record that hold them.
COST_KEYS = {"Seconds/frame": "seconds_per_frame", "Peak memory (MiB)": "peak_memory_mib"}

#: What to install for ``executor="ray"`` (``hmmnlab ablate --ray``).
CLUSTER_INSTALL = 'pip install "hmmnlab[cluster]"'


@dataclass(frozen=True)
class Cell:
    """One job of an ablation grid: the read ``read`` (labelled ``label``) on one sequence of a
    DAVIS-layout split, segmented into ``folder/<sequence>/`` with its record in
    ``folder/timing/<sequence>.json`` (:func:`hmmnlab.evaluate.segment_sequence`). ``settings`` is
    what the masks depend on (:func:`hmmnlab.records.run_settings`): a cell whose record holds the
    same settings is finished. Everything a Ray worker needs but the model."""

    label: str
    read: ReadConfig
    sequence: str
    folder: Path
    davis_root: Path
    year: int
    split: str
    resolution: str
    settings: dict
    device: str  # "cuda" in a Ray task means the GPU Ray gave it
    amp: bool = False
    overlays: bool = False
    threads: int | None = None  # torch threads while the cell runs (None: leave them)
    progress: bool = False  # a progress bar over the frames
    dtype: str = "float32"  # or "bfloat16" (hmmnlab.precision)


def run_cell(model, cell: Cell) -> str:
    """Segment one cell (in this process or in a Ray worker) and return its note: ``""`` when its
    masks and record are written, ``"refused: ..."`` when the read refuses to run (a ValueError:
    it does not fit in memory). Any other error propagates; the cell then has no record and the
    next run redoes it."""
    import torch

    from hmmnlab.data.davis import DavisDataset
    from hmmnlab.evaluate import segment_sequence
    from hmmnlab.inference import resolve_device
    from hmmnlab.model.reads import FINE_READS, KERNELS
    from hmmnlab.resources import check_memory

    for what, name, registry in (("variant", cell.read.variant, KERNELS),
                                 ("fine read", cell.read.fine, FINE_READS)):  # fmt: skip
        if name not in registry:  # registered in the driver only, not in this worker
            raise LookupError(
                f"read {what} {name!r} is not registered in this process (known: "
                f"{sorted(registry)}); register it in a module the workers import"
            )
    device = resolve_device(cell.device)
    dataset = DavisDataset(cell.davis_root, year=cell.year, split=cell.split,
                           resolution=cell.resolution, sequences=[cell.sequence])  # fmt: skip
    sequence = dataset[cell.sequence]
    model = model.to(device).eval()
    threads = torch.get_num_threads()
    if cell.threads:
        torch.set_num_threads(cell.threads)
    try:
        check_memory(*sequence.size, sequence.num_objects, len(sequence), cell.read,
                     device=device, what=f"sequence {sequence.name}",
                     model=model.config)  # fmt: skip
        segment_sequence(model, sequence, cell.folder, read=cell.read, device=device,
                         amp=cell.amp, dtype=cell.dtype, overlays=cell.overlays, progress=cell.progress,
                         settings=cell.settings)  # fmt: skip
    except ValueError as err:  # e.g. a dense read that would not fit in memory
        return f"refused: {err}"
    finally:
        torch.set_num_threads(threads)
    return ""


def import_ray():
    """The ``ray`` module, or a RuntimeError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RuntimeError(f"running on Ray needs Ray: {CLUSTER_INSTALL}") from None
    return ray


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
    from tqdm import tqdm

    from hmmnlab.data.davis import DavisDataset
    from hmmnlab.evaluate import is_finished, read_folders
    from hmmnlab.inference import resolve_device
    from hmmnlab.records import check_output_dir, check_outside, output_lock, run_settings

    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be None or an int >= 1, got {threads!r}")
    ray = import_ray() if executor == "ray" else None
    davis_root = repo_path(davis_root)
    default = variants is None  # the default grid, from the read the weights carry
    variants = default_grid() if default else list(variants)
    labels = [label for label, _ in variants]
    if len(set(labels)) != len(labels):
        raise ValueError(f"ablation labels must be unique, got {labels}")
    bad = [label for label in labels if not label or "/" in label or label.startswith(".")]
    if bad:
        raise ValueError(f"labels name folders: no '/', no leading '.', not empty; got {bad}")
    # fails early on a bad root or split
    dataset = DavisDataset(davis_root, year=year, split=split, resolution=resolution)
    unknown = [n for n in sequences or () if n not in dataset.sequences]
    if unknown:
        raise ValueError(f"sequences not in the {split} split of {davis_root}: {unknown[:5]}")
    names = list(sequences or dataset.sequences)
    if len(set(names)) != len(names):
        raise ValueError(f"sequences must be unique, got {names}")
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
        if ray is not None and todo:
            if not ray.is_initialized():
                connect_ray(ray, ray_address, num_cpus=num_cpus)
                stack.callback(ray.shutdown)
            device = _ray_device(ray, device)
            threads = threads or 1  # the CPUs of each task
        cells = [Cell(label, read, name, folder, davis_root, year, split, resolution, settings,
                      device, amp, overlays, threads, progress=progress and ray is None, dtype=settings["dtype"])
                 for label, read, name, folder, settings in todo]  # fmt: skip
        bar = tqdm(total=finished + len(cells), initial=finished, desc="cells", unit="cell",
                   disable=not progress)  # fmt: skip
        with bar:
            if ray is None:
                notes = {}
                for cell in cells:
                    notes[cell.label, cell.sequence] = run_cell(model, cell)
                    bar.update()
            else:
                notes = _run_on_ray(ray, model, cells, bar, max_retries=max_retries)
        table = _table(variants, names, notes, davis_root=davis_root, out=out, year=year,
                       split=split, resolution=resolution)  # fmt: skip
        _write_csv_atomically(table, out / TABLE_NAME)
    return table


#: Seconds to wait for a Ray cluster's address to answer before giving up.
RAY_CONNECT_TIMEOUT_S = 10.0


def ray_host_port(address: str) -> tuple[str, int] | None:
    """The (host, port) a Ray address connects to (``ray://head:10001``, ``head:6379``, ``head``:
    Ray's port 6379), or None for ``auto`` / ``local`` (found by Ray itself)."""
    if address in ("auto", "local"):
        return None
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep:
        return rest, 6379
    if not port.isdigit() or not host:
        raise ValueError(f"--ray {address}: expected auto, HOST[:PORT] or ray://HOST:PORT")
    return host, int(port)


def connect_ray(ray, address: str | None, *, num_cpus: int | None = None,
                timeout: float = RAY_CONNECT_TIMEOUT_S) -> None:  # fmt: skip
    """``ray.init``: a local Ray (no ``address``) or the cluster at ``address``, first checking
    within ``timeout`` seconds that the address answers (Ray itself retries for minutes). A cluster
    that cannot be reached is a RuntimeError naming the address."""
    import socket

    if not address:
        ray.init(num_cpus=num_cpus, include_dashboard=False)
        return
    target = ray_host_port(address)
    if target is not None:
        try:
            socket.create_connection(target, timeout=timeout).close()
        except OSError as err:
            reason = "no answer" if isinstance(err, TimeoutError) else (err.strerror or str(err))
            raise RuntimeError(
                f"cannot reach the Ray cluster at {address} ({target[0]}:{target[1]}: {reason} "
                f"within {timeout:g} s); start it (ray start --head) or give another --ray address"
            ) from None
    try:
        ray.init(address=address)
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as err:
        lines = str(err).strip().splitlines()
        raise RuntimeError(
            f"cannot connect to the Ray cluster at {address}: {lines[0] if lines else err!r}"
        ) from None


def _ray_device(ray, device: str | None) -> str:
    """The device of the cells on Ray: ``cuda`` (the GPU Ray gives each task) when asked for or,
    for None, when the cluster has GPUs; else ``cpu``."""
    gpus = ray.cluster_resources().get("GPU", 0)
    if device is None:
        return "cuda" if gpus else "cpu"
    kind = str(device).split(":")[0]
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {str(device)!r}: expected 'cpu' or 'cuda'")
    if kind == "cuda" and not gpus:
        raise ValueError(f"device {str(device)!r} requested but the Ray cluster has no GPU")
    return kind


def _run_on_ray(ray, model, cells: list[Cell], bar, *, max_retries: int) -> dict:
    """Submit every cell as a Ray task, collect the notes as tasks finish (updating ``bar``), and
    raise a RuntimeError naming the cells that failed once all the others are done."""
    num_gpus = 1 if any(cell.device == "cuda" for cell in cells) else 0
    num_cpus = max((cell.threads or 1) for cell in cells)
    task = ray.remote(run_cell).options(num_cpus=num_cpus, num_gpus=num_gpus,
                                        max_retries=max_retries)  # fmt: skip
    model_ref = ray.put(_on_cpu(model))
    pending = {task.remote(model_ref, cell): cell for cell in cells}
    notes, failed = {}, []
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                cell = pending.pop(ref)
                try:
                    notes[cell.label, cell.sequence] = ray.get(ref)
                except ray.exceptions.RayError as err:  # the task raised, or its worker died
                    failed.append(f"{cell.label}/{cell.sequence}: {_one_line(err)}")
                bar.update()
    finally:
        for ref in pending:  # interrupted: stop what is still queued or running
            ray.cancel(ref)
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(cells)} cells failed ({'; '.join(failed)}); the others are "
            f"saved: run again to redo the failed ones"
        )
    return notes


def _one_line(err: Exception) -> str:
    """A Ray error as one line: the task's own exception (``RayTaskError.cause``) where there is
    one, its type and the first line of its message."""
    cause = getattr(err, "cause", None) or err
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"


def _on_cpu(model):
    """``model`` if its parameters are on the CPU, else a CPU copy (the one sent to the workers)."""
    import copy

    if all(p.device.type == "cpu" for p in model.parameters()):
        return model
    return copy.deepcopy(model).cpu()


def _table(variants: Grid, names: list[str], notes: dict, *, davis_root: Path, out: Path,
           year: int, split: str, resolution: str) -> pd.DataFrame:  # fmt: skip
    """The ablation table from the cells' masks and records: each read scored on its masks (and
    its official CSVs written to ``out/<label>/``); a read refused on any sequence is a row with
    NaN scores and the first refusal (in sequence order) as its note."""
    from hmmnlab.records import read_record
    from hmmnlab.scoring import score, write_results

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


def _write_csv_atomically(table: pd.DataFrame, path: Path) -> None:
    """``table`` to ``path`` through a temporary file and a rename."""
    from hmmnlab.records import atomic_path

    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False)


def run_command(args) -> int:
    """``hmmnlab ablate`` (its options: :mod:`hmmnlab.cli`)."""
    if args.ray is not None:
        import_ray()  # without Ray: the one-line error, before any work
    elif args.num_cpus is not None:
        raise ValueError("--num-cpus sets the CPUs of a local Ray: give it with --ray")
    if args.ray and args.num_cpus is not None:
        raise ValueError(f"--num-cpus is for a local Ray, not the cluster at {args.ray}")
    base = carried_read(args.weights)  # the reads of the weights' variant start from theirs
    variants = named_grid(args.variants, base) if args.variants else quick_grid(base)
    table = run(
        args.root, args.weights, variants=variants, year=args.year, split=args.split,
        resolution=args.resolution, sequences=args.sequences, out=args.out, device=args.device,
        amp=args.amp, dtype=args.dtype, overlays=args.overlays, progress=not args.no_progress, threads=args.threads,
        executor="local" if args.ray is None else "ray", ray_address=args.ray or None,
        num_cpus=args.num_cpus,
    )  # fmt: skip
    print(table[["label", *varying_columns(table), *RESULT_COLUMNS]].to_string(index=False))
    print(f"wrote {Path(args.out) / TABLE_NAME} and the masks and CSVs of each read")
    return 0


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
