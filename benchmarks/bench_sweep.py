"""Wall time of an ablation grid in this process and on a local Ray with 1, 2, ... CPUs, in one run.

Run from the repository root (needs Ray: ``pip install -e ".[cluster]"``)::

    python benchmarks/bench_sweep.py [--weights demo] [--variants stm,kmn,hmmn]
        [--sequences twins,solo-blob] [--frames 6] [--cpus 1,2]

The grid (every read of ``--variants`` on every sequence, cut to its first ``--frames`` frames) runs
once per executor, each into a fresh output folder: ``local`` (the cells one after the other in this
process) with one torch thread, as a Ray task runs a cell, and with torch's default threads; then
``ray N``, the cells as Ray tasks on a local Ray with N CPUs (N cells at a time, one torch thread
each). ``grid`` is the time of ``ablation.run``; it includes the start of the Ray workers (they
import torch on their first task) but not ``ray.init``, shown apart. ``same masks``: every mask is
byte for byte that of the local run with one thread.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hmmnlab import ablation


def masks(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.glob("*/*/*.png"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="demo", help="registered name or checkpoint")
    parser.add_argument("--variants", default="stm,kmn,hmmn", help="comma-separated reads")
    parser.add_argument("--sequences", default="twins,solo-blob", help="samples to cut")
    parser.add_argument("--frames", type=int, default=6, help="frames per sequence (default 6)")
    parser.add_argument("--cpus", default="1,2", help="CPUs of each local Ray (default 1,2)")
    args = parser.parse_args()

    import ray
    import torch

    variants = ablation.named_grid(args.variants.split(","))
    sequences = args.sequences.split(",")
    cells = len(variants) * len(sequences)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = ablation.short_davis("data_samples", tmp / "davis", frames=args.frames,
                                    sequences=sequences)  # fmt: skip
        model = ablation.resolve_model(args.weights)
        common = dict(variants=variants, sequences=sequences, progress=False)
        runs = []  # (executor, workers, ray.init seconds, grid seconds, output folder)
        for threads in (1, torch.get_num_threads()):
            start = time.perf_counter()
            ablation.run(root, model, out=tmp / f"local-{threads}", threads=threads, **common)
            runs.append(("local", f"1 process, {threads} thread(s)", None,
                         time.perf_counter() - start, tmp / f"local-{threads}"))  # fmt: skip
        for cpus in (int(n) for n in args.cpus.split(",")):
            start = time.perf_counter()
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
            started = time.perf_counter() - start
            try:
                start = time.perf_counter()
                ablation.run(root, model, out=tmp / f"ray-{cpus}", executor="ray", **common)
                seconds = time.perf_counter() - start
            finally:
                ray.shutdown()
            runs.append((f"ray {cpus}", f"{cpus} worker(s), 1 thread each", started, seconds,
                         tmp / f"ray-{cpus}"))  # fmt: skip
        reference = masks(runs[0][-1])
        print(f"grid: {len(variants)} reads ({args.variants}) x {len(sequences)} sequences "
              f"({args.sequences}), {args.frames} frames each = {cells} cells; weights "
              f"{args.weights}")  # fmt: skip
        print(f"{'executor':<9} {'workers':<26} {'ray.init':>8} {'grid':>8} {'per cell':>9}  "
              "same masks")  # fmt: skip
        for name, workers, started, seconds, out in runs:
            init = "-" if started is None else f"{started:.1f} s"
            same = "yes" if masks(out) == reference else "no"
            print(f"{name:<9} {workers:<26} {init:>8} {seconds:>6.1f} s {seconds / cells:>7.2f} s"
                  f"  {same}")  # fmt: skip


if __name__ == "__main__":
    main()
