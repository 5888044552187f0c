"""Speed of the DAVIS metrics at 480p: object-frames per second for J, F and both, and end to end.

Run from the repository root::

    python benchmarks/bench_scoring.py [--repeats 3] [--no-files] [--workers 2]

Masks: the ground truth and perturbed predictions of ``tests/data/davis_metrics_fixture.npz``
(480 x 854, 440 object-frames over 5 sequences). Without that file, the DAVIS-2016 240p training
data of ``../shared/data`` is upsampled to 480 x 854 (nearest neighbour) and eroded; without either,
random ellipses are used.

The "official" column is not a live run: the official toolkit (davis2017-evaluation) is not a
dependency. Its times were measured on the development machine and recorded in the fixture's
``timing_cpu`` entry: 0.40 ms per frame for ``db_eval_iou``, 2.82 ms for ``f_measure`` and 15.5 ms
per object-frame for ``evaluate()`` including PNG reading. The speed-ups divide those by ours.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from hmmnlab.data.palette import write_label_png
from hmmnlab.metrics import boundary_f_measure, jaccard_index, object_scores
from hmmnlab.scoring import score

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "data"  # the bundled golden data
SHARED_DAVIS = REPO / ".." / "shared" / "data" / "davis2016-train-240p"

# Recorded official timings (ms), used when the fixture JSON is absent; same numbers.
OFFICIAL_MS = {"J": 0.402, "F": 2.821, "end to end": 15.53}


def official_timings() -> tuple[dict[str, float], str]:
    """Official ms per object-frame for J, F and end to end, and where they come from."""
    path = REFERENCE / "davis_metrics_fixture.json"
    if not path.is_file():
        return dict(OFFICIAL_MS), "recorded values (fixture JSON absent)"
    timing = json.loads(path.read_text())["timing_cpu"]
    found = {
        "J": timing["db_eval_iou_ms_per_frame_480p"],
        "F": timing["f_measure_ms_per_frame_480p"],
        "end to end": timing["evaluate_end_to_end_ms_per_object_frame (incl. PNG I/O)"],
    }
    return found, f"fixture timing_cpu ({timing['frames_timed']} frames timed)"


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


def end_to_end(cases, repeats: int, workers: int) -> dict[str, float]:
    """Seconds per object-frame of ``score()`` on the cases written as PNG files (DAVIS 2017)."""
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root, pred_dir = Path(tmp) / "davis", Path(tmp) / "pred"
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
        for n in sorted({1, workers}):
            seconds = best_time(
                lambda n=n: score(root, pred_dir, year=2017, split="val", workers=n), repeats
            )
            results[f"end to end, {n} process{'es' if n > 1 else ''}"] = seconds / scored
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs (default 3)")
    parser.add_argument("--no-files", action="store_true", help="skip the end-to-end timing")
    parser.add_argument("--workers", type=int, default=2, help="processes for end to end")
    args = parser.parse_args()

    cases, source = load_cases()
    pairs = object_frames(cases)
    n_pairs = len(pairs)
    official, official_source = official_timings()
    print(f"masks: {source}; {n_pairs} object-frames at 480 x 854; best of {args.repeats} runs")
    print(f"official times: {official_source} (recorded, not a live run)\n")

    per_object_frame = {
        "J": best_time(lambda: [jaccard_index(g, p) for g, p in pairs], args.repeats) / n_pairs,
        "F": best_time(lambda: [boundary_f_measure(g, p) for g, p in pairs], args.repeats)
        / n_pairs,
        "F, full frame (fast=False)": best_time(
            lambda: [boundary_f_measure(g, p, fast=False) for g, p in pairs], args.repeats
        )
        / n_pairs,
    }
    both = best_time(
        lambda: [object_scores(gt, pred, int(gt[0].max())) for gt, pred in cases.values()],
        args.repeats,
    )
    per_object_frame["J and F (object_scores on label maps)"] = both / n_pairs
    if not args.no_files:
        per_object_frame.update(end_to_end(cases, args.repeats, args.workers))

    reference = {
        "J": official["J"],
        "F": official["F"],
        "F, full frame (fast=False)": official["F"],
        "J and F (object_scores on label maps)": official["J"] + official["F"],
    }
    print(
        f"{'measure':<42}{'ms/obj-frame':>13}{'obj-frames/s':>14}{'official ms':>13}{'speed-up':>10}"
    )
    for name, seconds in per_object_frame.items():
        ms = seconds * 1e3
        ref = reference.get(name, official["end to end"])
        print(f"{name:<42}{ms:>13.3f}{1e3 / ms:>14.0f}{ref:>13.2f}{ref / ms:>9.1f}x")
    print(
        "\nThe last column divides the official time by ours; 'J and F' is compared with the sum "
        "of the\nofficial J and F times, end to end with the official evaluate() "
        f"({official['end to end']:.1f} ms, PNG reading included)."
    )


if __name__ == "__main__":
    main()
