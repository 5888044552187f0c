"""Ablation grids: lists of ``(label, ReadConfig)`` pairs, built from the read the weights carry
(:func:`variant_read`) or from a variant's registered defaults."""

from __future__ import annotations

import dataclasses

from hmmnlab.config import ReadConfig
from hmmnlab.model.reads import read_variant

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
