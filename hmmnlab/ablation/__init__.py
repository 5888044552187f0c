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
``hmmnlab ablate`` (:mod:`hmmnlab.commands.ablate`) is the command line of :func:`run`.

:func:`styled` and :func:`plot` present the table; :func:`short_davis` writes a copy of a split cut
to its first frames, for quick runs; :func:`resolve_model` turns a ``weights`` argument (a model, a
registered name or a path) into a model.

The package, by job: :mod:`~hmmnlab.ablation.grids` (the grids), :mod:`~hmmnlab.ablation.cells`
(one cell), :mod:`~hmmnlab.ablation.runner` (:func:`run`),
:mod:`~hmmnlab.ablation.ray_tasks` (the cells on Ray) and :mod:`~hmmnlab.ablation.tables` (the
table, its style and plots). ``short_davis`` lives beside the DAVIS reader
(:mod:`hmmnlab.data.davis`), ``resolve_model`` and ``carried_read`` beside the weights resolver
(:mod:`hmmnlab.weights`); every name stays importable from here.
"""

from __future__ import annotations

from hmmnlab.ablation.cells import Cell, run_cell
from hmmnlab.ablation.grids import Grid, default_grid, named_grid, quick_grid, variant_read
from hmmnlab.ablation.ray_tasks import (
    CLUSTER_INSTALL,
    RAY_CONNECT_TIMEOUT_S,
    connect_ray,
    import_ray,
    ray_host_port,
)
from hmmnlab.ablation.ray_tasks import (
    _ray_device as _ray_device,
)
from hmmnlab.ablation.runner import EXECUTORS, TABLE_NAME, run
from hmmnlab.ablation.tables import (
    COST_KEYS,
    RESULT_COLUMNS,
    plot,
    score_table,
    styled,
    varying_columns,
)
from hmmnlab.data.davis import repo_path, short_davis
from hmmnlab.weights import DEMO_WEIGHTS, carried_read, resolve_model

__all__ = [
    "CLUSTER_INSTALL",
    "COST_KEYS",
    "Cell",
    "DEMO_WEIGHTS",
    "EXECUTORS",
    "Grid",
    "RAY_CONNECT_TIMEOUT_S",
    "RESULT_COLUMNS",
    "TABLE_NAME",
    "carried_read",
    "connect_ray",
    "default_grid",
    "import_ray",
    "named_grid",
    "plot",
    "quick_grid",
    "ray_host_port",
    "repo_path",
    "resolve_model",
    "run",
    "run_cell",
    "score_table",
    "short_davis",
    "styled",
    "variant_read",
    "varying_columns",
]
