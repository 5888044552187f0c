"""One cell of an ablation grid: a read on one sequence (:class:`Cell`), segmented by
:func:`run_cell` in this process or in a Ray worker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hmmnlab.config import ReadConfig
from hmmnlab.precision import torch_threads


@dataclass(frozen=True)
class Cell:
    """One job of an ablation grid: the read ``read`` (labelled ``label``) on one sequence of a
    DAVIS-layout split, segmented into ``folder/<sequence>/`` with its record in
    ``folder/timing/<sequence>.json`` (:func:`hmmnlab.evaluation.runner.segment_video`, the DAVIS
    layout). ``settings`` is what the masks depend on
    (:func:`hmmnlab.evaluation.records.run_settings`): a cell whose record holds the same settings
    is finished. Everything a Ray worker needs but the model."""

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
    dtype: str | None = None  # float32, bfloat16; None: hmmnlab.precision's default


def run_cell(model, cell: Cell) -> str:
    """Segment one cell (in this process or in a Ray worker) and return its note: ``""`` when its
    masks and record are written, ``"refused: ..."`` when the read refuses to run (a ValueError:
    it does not fit in memory). Any other error propagates; the cell then has no record and the
    next run redoes it."""

    from hmmnlab.data.davis import DavisDataset
    from hmmnlab.evaluation.runner import DavisLayout, check_fits, segment_video
    from hmmnlab.inference import resolve_device
    from hmmnlab.model.reads import FINE_READS, KERNELS

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
    with torch_threads(cell.threads):
        try:
            check_fits(model, [sequence], cell.read, device)
            segment_video(model, sequence, cell.folder, DavisLayout(cell.overlays), read=cell.read,
                          device=device, amp=cell.amp, dtype=cell.dtype, progress=cell.progress,
                          settings=cell.settings)  # fmt: skip
        except ValueError as err:  # e.g. a dense read that would not fit in memory
            return f"refused: {err}"
    return ""
