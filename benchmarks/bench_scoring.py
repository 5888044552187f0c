"""Speed of the DAVIS metrics at 480p against the official toolkit, measured side by side in one
run.

Run from the repository root::

    python benchmarks/bench_scoring.py --official PATH [--repeats 3] [--no-files] [--workers 2]

PATH is a checkout of the official toolkit (github.com/davisvideochallenge/davis2017-evaluation;
it needs scikit-image, scipy and networkx). It is run, never copied: its ``db_eval_iou`` and
``f_measure`` are timed on the same masks as ours, and as **whole processes**, ``hmmnlab score``
and the toolkit's ``evaluation_method.py`` score the same predictions from a cold start (imports,
PNG reading, CSV writing), alternately; the two J&F they print must agree. Without ``--official``
only hmmnlab's own times are printed (no ratio against figures from another day).

Masks: the ground truth and perturbed predictions of ``tests/data/davis_metrics_fixture.npz``
(480 x 854, 440 object-frames over 5 sequences). Without that file, the DAVIS-2016 240p training
data of ``../shared/data`` is upsampled to 480 x 854 (nearest neighbour) and eroded; without either,
random ellipses are used.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from hmmnlab.data.palette import write_label_png
from hmmnlab.evaluation.metrics import boundary_f_measure, jaccard_index
from hmmnlab.evaluation.scoring import score

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "data"  # the bundled golden data
SHARED_DAVIS = REPO / ".." / "shared" / "data" / "davis2016-train-240p"


def official_metrics(path: Path):
    """The official toolkit's ``davis2017.metrics`` module, imported from its checkout."""
    if not (path / "davis2017" / "metrics.py").is_file():
        raise SystemExit(f"--official {path}: not a davis2017-evaluation checkout (no davis2017/)")
    sys.path.insert(0, str(path))
    from davis2017 import metrics

    return metrics


def load_cases() -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """{name: (gt, pred)} with T x 480 x 854 uint8 label maps, and a description of the source."""
    path = REFERENCE / "davis_metrics_fixture.npz"
    if path.is_file():
        with np.load(path) as npz:
            names = sorted(key[len("gt__") :] for key in npz.files if key.startswith("gt__"))
            cases = {name: (npz[f"gt__{name}"], npz[f"pred__{name}"]) for name in names}
        return cases, "davis_metrics_fixture.npz"
    if SHARED_DAVIS.is_dir():
        from hmmnlab.data.davis import DavisDataset

        dataset = DavisDataset(SHARED_DAVIS, year=2016, split="train", resolution="240p")
        cases = {}
        for name in dataset.sequences[:4]:
            small = dataset[name].masks()  # T x 240 x 427
            gt = np.stack(
                [cv2.resize(m, (854, 480), interpolation=cv2.INTER_NEAREST) for m in small]
            )
            pred = np.stack([cv2.erode(m, np.ones((5, 5), np.uint8)) for m in gt])
            cases[name] = (gt, pred)
        return cases, "shared DAVIS-2016 240p data upsampled to 480p"
    rng = np.random.default_rng(0)
    gt = np.zeros((100, 480, 854), np.uint8)
    for m in gt:
        centre = (int(rng.integers(200, 650)), int(rng.integers(100, 380)))
        cv2.ellipse(m, centre, (120, 80), float(rng.uniform(0, 180)), 0, 360, 1, -1)
    pred = np.roll(gt, 3, axis=2)
    return {"ellipses": (gt, pred)}, "random ellipses (no shared data found)"


def object_frames(cases) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every (gt == k, pred == k) pair, as H x W bool masks."""
    pairs = []
    for gt, pred in cases.values():
        labels = [k for k in np.unique(gt) if 0 < k < 255]
        for k in labels:
            pairs += [(g == k, p == k) for g, p in zip(gt, pred, strict=True)]
    return pairs


def best_time(func, repeats: int) -> float:
    """Smallest wall time of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def write_split(cases, folder: Path) -> tuple[Path, Path, int]:
    """The cases as a DAVIS 2017 val root (black JPEGs: the official toolkit lists frames by them)
    and a predictions folder, under ``folder``; returns (root, predictions, scored
    object-frames)."""
    root, pred_dir = folder / "davis", folder / "pred"
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(cases) + "\n")
    scored = 0
    for name, (gt, pred) in cases.items():
        (root / "JPEGImages" / "480p" / name).mkdir(parents=True)
        black = np.zeros((*gt.shape[1:], 3), np.uint8)
        for t in range(len(gt)):
            Image.fromarray(black).save(root / "JPEGImages" / "480p" / name / f"{t:05d}.jpg")
            write_label_png(root / "Annotations" / "480p" / name / f"{t:05d}.png", gt[t])
            write_label_png(pred_dir / name / f"{t:05d}.png", pred[t])
        scored += (len(gt) - 2) * int(gt[0][gt[0] != 255].max())
    return root, pred_dir, scored


def end_to_end(root: Path, pred_dir: Path, scored: int, repeats: int, workers: int) -> dict:
    """Seconds per object-frame of ``score()`` in this process (PNG reading included)."""
    results = {}
    for n in sorted({1, workers}):
        seconds = best_time(
            lambda n=n: score(root, pred_dir, year=2017, split="val", workers=n), repeats
        )
        results[f"end to end, {n} process{'es' if n > 1 else ''}"] = seconds / scored
    return results


def timed_run(command: list[str], env: dict) -> tuple[float, str]:
    """Wall time of one whole process and its standard output (it must succeed)."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout


def global_jf(csv_path: Path) -> float:
    """J&F-Mean of a global results CSV (hmmnlab's and the official one have that column)."""
    with open(csv_path, newline="") as f:
        return float(next(csv.DictReader(f))["J&F-Mean"])


def whole_processes(root: Path, pred_dir: Path, official: Path, repeats: int) -> dict:
    """``hmmnlab score`` and the official ``evaluation_method.py`` as whole processes, one after
    the other ``repeats`` times: {name: (best seconds, J&F)}."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(official), str(REPO)])}
    out = root.parent / "hmmnlab-out"
    ours = [sys.executable, "-m", "hmmnlab", "score", "--davis", str(root), "--year", "2017",
            "--pred", str(pred_dir), "--out", str(out)]  # fmt: skip
    theirs_dir = root.parent / "official-results"
    theirs = [sys.executable, str(official / "evaluation_method.py"), "--task", "semi-supervised",
              "--set", "val", "--davis_path", str(root), "--results_path", str(theirs_dir)]  # fmt: skip
    times = {"hmmnlab score": [], "official evaluation_method.py": []}
    scores = {}
    for _ in range(repeats):
        shutil.rmtree(out, ignore_errors=True)
        seconds, _ = timed_run(ours, env)
        times["hmmnlab score"].append(seconds)
        scores["hmmnlab score"] = global_jf(out / "global_results.csv")
        # a fresh results folder each time: the toolkit reuses the CSVs it finds there
        shutil.rmtree(theirs_dir, ignore_errors=True)
        shutil.copytree(pred_dir, theirs_dir)
        seconds, printed = timed_run(theirs, env)
        if "Using precomputed results" in printed:
            raise SystemExit("the official toolkit reused old results; nothing was timed")
        times["official evaluation_method.py"].append(seconds)
        scores["official evaluation_method.py"] = global_jf(theirs_dir / "global_results-val.csv")
    return {name: (min(t), scores[name]) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, default=None, metavar="PATH",
                        help="a davis2017-evaluation checkout, timed side by side")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs (default 3)")
    parser.add_argument("--no-files", action="store_true", help="skip the end-to-end timings")
    parser.add_argument("--workers", type=int, default=2, help="processes for end to end")
    args = parser.parse_args()

    cases, source = load_cases()
    pairs = object_frames(cases)
    n_pairs = len(pairs)
    print(f"masks: {source}; {n_pairs} object-frames at 480 x 854; best of {args.repeats} runs")
    official = official_metrics(args.official.resolve()) if args.official else None

    measures = {
        "J": (lambda: [jaccard_index(g, p) for g, p in pairs],
              official and (lambda: [official.db_eval_iou(g, p) for g, p in pairs])),
        "F": (lambda: [boundary_f_measure(g, p) for g, p in pairs],
              official and (lambda: [official.f_measure(p, g) for g, p in pairs])),
        "F, full frame (fast=False)": (
            lambda: [boundary_f_measure(g, p, fast=False) for g, p in pairs],
            official and (lambda: [official.f_measure(p, g) for g, p in pairs])),
    }  # fmt: skip
    print(
        f"\n{'measure':<34}{'hmmnlab ms':>12}{'official ms':>13}{'speed-up':>10}  (per object-frame)"
    )
    for name, (ours, theirs) in measures.items():
        mine = best_time(ours, args.repeats) / n_pairs * 1e3
        if theirs is None:
            print(f"{name:<34}{mine:>12.3f}{'-':>13}{'-':>10}")
            continue
        ref = best_time(theirs, args.repeats) / n_pairs * 1e3
        print(f"{name:<34}{mine:>12.3f}{ref:>13.3f}{ref / mine:>9.1f}x")
    if args.no_files:
        return
    with tempfile.TemporaryDirectory() as tmp:
        root, pred_dir, scored = write_split(cases, Path(tmp))
        print(
            f"\nend to end in this process (score(), PNG reading included), {scored} object-frames:"
        )
        for name, seconds in end_to_end(root, pred_dir, scored, args.repeats, args.workers).items():
            print(f"  {name:<32}{seconds * 1e3:>8.2f} ms/object-frame")
        if official is None:
            print(
                "\nwhole processes: give --official PATH to time hmmnlab score against the toolkit"
            )
            return
        print("\nwhole processes (cold start, imports and CSVs included), alternately:")
        runs = whole_processes(root, pred_dir, args.official.resolve(), args.repeats)
        for name, (seconds, jf) in runs.items():
            print(f"  {name:<32}{seconds:>8.2f} s   J&F {jf:.3f}")
        (ours_s, ours_jf), (theirs_s, theirs_jf) = runs.values()
        print(f"  whole-process speed-up: x{theirs_s / ours_s:.2f}")
        if abs(ours_jf - theirs_jf) > 1e-3:
            raise SystemExit(f"the two J&F disagree: {ours_jf:.4f} against {theirs_jf:.4f}")


if __name__ == "__main__":
    main()
