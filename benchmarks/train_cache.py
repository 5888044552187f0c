"""Write the video caches of ``hmmnlab train --synthetic-cache DIR`` on many cores at once.

``hmmnlab train`` renders its synthetic and look-alike videos one after the other (about 3 minutes
for 100 + 80 on one core). On a machine with many cores, and when the time is short (a lent GPU),
this script renders the same videos (same specs, seeds, names and DAVIS layout) in parallel
processes; ``hmmnlab train`` then finds the cache complete and reads it instead of rendering::

    python benchmarks/train_cache.py --cache runs/cache --synthetic 100 --synthetic-val 3 \\
        --lookalikes 120 --lookalikes-val 4 --workers 14
    hmmnlab train --synthetic 100 --synthetic-val 3 --lookalikes 120 --lookalikes-val 4 \\
        --synthetic-cache runs/cache ...

The seeds are ``hmmnlab train``'s: the run's ``seed`` for training videos, ``seed + 1`` for the
held-out ones (give the same ``--seed`` as the run's ``--set seed=``).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from hmmnlab.data.lookalikes import INDEX_FILE, lookalike_specs, write_lookalikes
from hmmnlab.data.synthetic import random_specs, write_davis


def _write_part(job: tuple) -> list:
    kind, root, specs, split = job
    if kind == "synthetic":
        write_davis(root, specs, split=split)
        return []
    return write_lookalikes(root, specs, split=split, progress=False)


def write_cache(root: Path, kind: str, specs: list, split: str, pool, workers: int) -> None:
    """Render ``specs`` into ``root`` in ``workers`` parts, then list them as ``split``, in order
    (and, for look-alikes, write their index), as one call of the writer would."""
    if not specs:
        return
    parts = [specs[i::workers] for i in range(workers) if specs[i::workers]]
    jobs = [(kind, root, part, f"{split}-part{i}") for i, part in enumerate(parts)]
    records = [r for found in pool.map(_write_part, jobs) for r in found]
    lists = root / "ImageSets" / "2017"
    for i in range(len(parts)):
        (lists / f"{split}-part{i}.txt").unlink()
    (lists / f"{split}.txt").write_text("".join(f"{s.name}\n" for s in specs))
    if kind == "lookalikes":
        order = {s.name: i for i, s in enumerate(specs)}
        records.sort(key=lambda r: order[r["name"]])
        index = json.loads((root / INDEX_FILE).read_text())
        index["videos"] = records
        (root / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, required=True, help="as train's --synthetic-cache")
    for name in ("synthetic", "synthetic-val", "lookalikes", "lookalikes-val"):
        parser.add_argument(f"--{name}", type=int, default=0, help=f"as train's --{name}")
    parser.add_argument("--seed", type=int, default=0, help="the run's seed (--set seed=)")
    parser.add_argument("--workers", type=int, default=4, help="parallel processes")
    args = parser.parse_args()
    started = time.perf_counter()
    looks = args.cache / "lookalikes"
    jobs = [
        ("synthetic", args.cache, random_specs(args.synthetic, args.seed, prefix="train"), "train"),
        ("synthetic", args.cache, random_specs(args.synthetic_val, args.seed + 1, prefix="val"),
         "val"),
        ("lookalikes", looks, lookalike_specs(args.lookalikes, args.seed, prefix="lookalike-train"),
         "train"),
        ("lookalikes", looks,
         lookalike_specs(args.lookalikes_val, args.seed + 1, prefix="lookalike-val"), "val"),
    ]  # fmt: skip
    with ProcessPoolExecutor(args.workers) as pool:
        for kind, root, specs, split in jobs:
            write_cache(root, kind, specs, split, pool, args.workers)
            print(f"{kind} {split}: {len(specs)} videos ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
