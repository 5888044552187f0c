"""The deterministic "recipe" weights of the golden fixtures, built by hmmnlab's test code.

``tests/data/hmmn_state_dict.tsv`` lists every entry of the authors' released checkpoint (key with
``module.``, shape, dtype) with a recipe: how to draw its values from one seeded random stream. The
fixtures were produced by the authors' code with these weights (seed 1); ``weights_checksums.json``
holds the sha256 of the result, which ``tests/test_recipe_weights.py`` checks. The recipe:

- rows in file order share one ``numpy.random.RandomState(seed)``;
- a float32 row draws ``standard_normal(numel)`` (float64) and is ``x * std + mean`` (``normal``),
  ``|x| * std + mean`` (``absnormal``, for BatchNorm variances) or the listed values (``fixed``; the
  draw is still made, then discarded), cast to float32 at the end;
- an int64 row (``num_batches_tracked``) is zeros and draws nothing.
"""

from __future__ import annotations

import csv
import hashlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parent / "data"
TSV = DATA / "hmmn_state_dict.tsv"


def shape_of(text: str) -> tuple[int, ...]:
    """``64x3x7x7`` -> (64, 3, 7, 7); ``scalar`` -> ()."""
    return () if text == "scalar" else tuple(int(d) for d in text.split("x"))


def recipe_rows(tsv: Path = TSV) -> list[dict[str, str]]:
    with open(tsv, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [row for row in rows if row["key"] and not row["key"].startswith("#")]


def recipe_state_dict(seed: int, tsv: Path = TSV) -> OrderedDict[str, torch.Tensor]:
    """The recipe state dict of ``seed``, keys as in the authors' file (``module.Encoder_M...``)."""
    stream = np.random.RandomState(seed)
    state = OrderedDict()
    for row in recipe_rows(tsv):
        shape = shape_of(row["shape"])
        if row["dtype"] == "int64":
            state[row["key"]] = torch.zeros(shape, dtype=torch.int64)
            continue
        if row["dtype"] != "float32":
            raise ValueError(f"{row['key']}: expected dtype float32 or int64, found {row['dtype']}")
        x = stream.standard_normal(int(np.prod(shape, dtype=np.int64)))
        transform = row["transform"]
        if transform == "normal":
            values = x * float(row["std"]) + float(row["mean"])
        elif transform == "absnormal":
            values = np.abs(x) * float(row["std"]) + float(row["mean"])
        elif transform == "fixed":
            values = np.array([float(v) for v in row["fixed"].split(",")], dtype=np.float64)
        else:
            raise ValueError(f"{row['key']}: unknown transform {transform!r}")
        state[row["key"]] = torch.from_numpy(values.astype(np.float32).reshape(shape))
    return state


def checksum(state: dict[str, torch.Tensor]) -> str:
    """sha256 over ``tensor.numpy().tobytes()`` of every entry, in order (as the checksums file)."""
    digest = hashlib.sha256()
    for tensor in state.values():
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()
