"""Accuracy of bfloat16 beside float32 (``--dtype bfloat16``), side by side in one run.

    python benchmarks/bench_precision_accuracy.py [--lookalikes /work/runs/la16] [--threads 2]
        [--max-frames N] [--parts lookalikes,fixtures] [--locate encoders,decoder]

* ``lookalikes``: the ``demo`` weights with their own read on a look-alike suite
  (``hmmnlab samples --lookalikes DIR``), J&F per clip in float32 and in bfloat16 (official
  conventions, as ``hmmnlab.inside.teaching.lookalike_scores`` scores them), the difference per clip
  and of the mean, and the share of label pixels that change.
* ``fixtures``: the authors' golden fixtures of tests/data with the recipe weights (seed 1, built by
  tests/recipe_weights.py), run as tests/test_parity.py runs them (the fast path the commands run):
  the largest probability difference from the authors' float32, in float32 and in bfloat16, and
  the share of label pixels that differ from the authors' labels.

The target is |ΔJ&F| <= 0.005. ``--locate encoders,decoder`` also runs bfloat16 with one part of
the network kept in float32 (the two encoders, or the decoder), in the same pass, to say which part
moves the labels.
Held-out DAVIS is measured with ``hmmnlab eval`` (docs/speed.md).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hmmnlab.evaluation.metrics import evaluate_semisupervised
from hmmnlab.inference import propagate
from hmmnlab.weights import load_model

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.005
FIXTURES = ("hmmn_fixture_public", "hmmn_fixture_public_k1")


@contextlib.contextmanager
def in_float32(*modules: torch.nn.Module):
    """Run ``modules`` with autocast off and their tensor inputs cast to float32 (one part of the
    network kept in float32 while the rest runs in bfloat16)."""

    def pre_hook(module, args, kwargs):
        cast = lambda v: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v  # noqa: E731
        return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}

    originals = {}
    handles = []
    for module in modules:
        originals[module] = module.forward
        module.forward = torch.autocast("cpu", enabled=False)(module.forward)
        handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        for module, forward in originals.items():
            module.forward = forward


def clip_jf(truth: np.ndarray, pred: np.ndarray, name: str) -> float:
    s = evaluate_semisupervised(truth, pred.astype(truth.dtype), name=name)
    return float((np.nanmean(s.j.mean(axis=1)) + np.nanmean(s.f.mean(axis=1))) / 2)


def lookalike_table(root: Path, max_frames: int | None, variants: dict) -> pd.DataFrame:
    """One row per clip: J&F of each variant, the difference to float32, pixels changed."""
    from hmmnlab.data.lookalikes import read_grades
    from hmmnlab.train.clips import open_davis

    model = load_model("demo", fast=True)
    grades = read_grades(root)
    rows = []
    for video in open_davis(root, split="val"):
        n = len(video) if max_frames is None else min(len(video), max_frames)
        frames = [np.array(video.frame(i)) for i in range(n)]
        truth = np.stack([video.labels(i) for i in range(n)])
        row = {"clip": video.name, "grade": grades[video.name]}
        preds = {}
        for label, (dtype, float32_parts) in variants.items():
            with in_float32(*(getattr(model, p) for p in float32_parts)):
                preds[label] = np.stack(
                    [r.labels.numpy() for r in propagate(model, frames, truth[0], dtype=dtype)]
                )
            row[f"J&F {label}"] = clip_jf(truth, preds[label], video.name)
        for label in list(variants)[1:]:
            row[f"Δ {label}"] = row[f"J&F {label}"] - row["J&F float32"]
            row[f"changed {label}"] = float((preds[label] != preds["float32"]).mean())
        rows.append(row)
        print(f"  {video.name}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()
                                                if isinstance(v, float)), flush=True)  # fmt: skip
    table = pd.DataFrame(rows)
    mean = {"clip": "mean", "grade": ""}
    mean.update({c: table[c].mean() for c in table.columns if c not in ("clip", "grade")})
    return pd.concat([table, pd.DataFrame([mean])], ignore_index=True)


def fixture_table(variants: dict) -> pd.DataFrame:
    """One row per (fixture, variant): the largest probability difference from the authors'
    float32 probabilities, and the share of label pixels that differ from their labels."""
    sys.path.insert(0, str(ROOT / "tests"))
    from recipe_weights import recipe_state_dict

    path = Path("/tmp") / f"hmmn_recipe_seed1_{id(variants)}.pth"
    torch.save(recipe_state_dict(1), path)
    try:
        model = load_model(path, fast=True)
    finally:
        path.unlink()
    rows = []
    for name in FIXTURES:
        fixture = dict(np.load(ROOT / "tests" / "data" / f"{name}.npz"))
        for label, (dtype, float32_parts) in variants.items():
            with in_float32(*(getattr(model, p) for p in float32_parts)):
                results = list(propagate(model, fixture["frames"], fixture["label0"],
                                         mem_every=int(fixture["mem_every"]), device="cpu",
                                         dtype=dtype))  # fmt: skip
            probs = np.stack([r.probs.numpy() for r in results])
            labels = np.stack([r.labels.numpy() for r in results])
            rows.append({
                "fixture": name, "run": label,
                "max |Δp| vs authors": float(np.abs(probs - fixture["Es"]).max()),
                "label pixels changed vs authors": float((labels != fixture["pred"]).mean()),
            })  # fmt: skip
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    from bench_precision import cpu_flags  # beside this script

    from hmmnlab.precision import cpu_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookalikes", default="/work/runs/la16", help="a look-alike suite")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--parts", default="lookalikes,fixtures")
    parser.add_argument(
        "--locate",
        default="",
        help="comma-separated parts (encoders, decoder): also bfloat16 with that part in float32",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_model()}; flags: {cpu_flags()}; {args.threads} thread(s)", flush=True)
    variants = {"float32": ("float32", ()), "bfloat16": ("bfloat16", ())}
    parts_of = {"encoders": ("memory_encoder", "query_encoder"), "decoder": ("decoder",)}
    locate = {
        f"bf16, {part} fp32": ("bfloat16", parts_of[part])
        for part in filter(None, args.locate.split(","))
    }
    parts = args.parts.split(",")
    pd.set_option("display.width", 250)
    if "fixtures" in parts:
        print(fixture_table(variants).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if "lookalikes" in parts:
        table = lookalike_table(Path(args.lookalikes), args.max_frames, {**variants, **locate})
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        delta = table.iloc[-1]["Δ bfloat16"]
        verdict = "met" if abs(delta) <= TARGET else "MISSED (rerun with --locate to find the part)"
        print(f"look-alike suite: mean ΔJ&F {delta:+.4f} (target |ΔJ&F| <= {TARGET}: {verdict})")


if __name__ == "__main__":
    main()
