"""The authors' HMMN code and hmmnlab side by side on the CPU, measured in one run: seconds per
frame (memorize, segment, total), peak memory, and how far apart their probabilities are.

    python benchmarks/bench_vs_authors.py --authors-repo PATH [--frames 8] [--height 480]
        [--width 854] [--objects 2] [--threads 2] [--repeats 2] [--weights recipe-1 | FILE.pth]
        [--json SUMMARY.json] [--dtype bfloat16]

PATH is your own checkout of github.com/Hongje/HMMN. Its ``model.py`` is imported as it is: nothing
in it is edited or copied. Their code calls CUDA; the process that runs it makes those calls no-ops
at run time (``torch.cuda.is_available()`` is False, ``.cuda()`` returns its object,
``torch.cuda.synchronize`` does nothing) and builds its ResNet-50 trunks without downloading the
ImageNet weights (the checkpoint overwrites them). Their video loop is the one of their
``eval_DAVIS.py`` (``Run_video`` with ``Mem_every=5``): memorize frame t-1, concatenate it to the
memory, segment frame t, softmax, keep the memory on schedule. hmmnlab runs
:func:`hmmnlab.inference.propagate` with the same memory schedule and a hook point marking the end of
the memory encoder (which splits memorize from segment).

Both run the same frames (a synthetic video of :mod:`hmmnlab.data.synthetic` with ``--objects``
objects) and the same weights: by default ``recipe-1``, the deterministic recipe weights of seed 1
(``tests/recipe_weights.py``, the weights of the golden fixtures) saved like the released file;
``recipe-N`` for another seed, or the path of a checkpoint in the released format (e.g. their
``HMMN_weights.pth``). Each implementation runs in its own process, alternately (authors, hmmnlab,
authors, hmmnlab, ... ``--repeats`` times each), with ``--threads`` torch threads. Each child times
every frame with ``time.perf_counter``; frame 1 warms up (the authors' code builds its window mask
there) and frames 2..N are averaged; it reports its peak resident memory (``ru_maxrss``) and saves its
probabilities, and the parent prints the medians over the runs, the ratios authors / hmmnlab of this
run and the largest difference between the two sets of probabilities.

``--dtype bfloat16`` adds a fourth run in the same alternation, ``hmmnlab-bfloat16``: hmmnlab's
fast path under ``propagate(..., dtype="bfloat16")`` (convolutions in bfloat16, the memory read in
float32, :mod:`hmmnlab.precision`), with the ratios authors / bfloat16 and hmmnlab / bfloat16 (its
speed-up over hmmnlab's own float32 fast path) and its probabilities' distance to the others.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
MEM_EVERY = 5  # the authors' eval_DAVIS.py: Run_video(..., Mem_every=5)
TOPK = 32  # the authors' r3 top-k: torch.topk needs that many r4 positions at frame 1
PHASES = ("memorize", "segment", "total")
IMPLEMENTATIONS = ("authors", "hmmnlab", "hmmnlab-readable")
BFLOAT16 = "hmmnlab-bfloat16"  # with --dtype bfloat16: hmmnlab's fast path in bfloat16
CHILD_ARGS = ("child", "video", "weights_file", "probs")  # what the parent passes its children


# ----------------------------------------------------------------------------------------------------
# Inputs shared by both children


def make_video(path: Path, *, frames: int, height: int, width: int, objects: int) -> None:
    """A synthetic video of ``frames + 1`` frames saved as ``.npz``: ``frames`` T x 3 x H x W
    float32 in [0, 1] and ``labels0`` H x W uint8 (0 background, 1..objects)."""
    from hmmnlab.data.synthetic import VideoSpec, generate_video

    spec = VideoSpec(
        "bench-vs-authors", seed=0, num_frames=frames + 1, height=height, width=width,
        num_objects=objects, occlusion=objects >= 2,
    )  # fmt: skip
    rgb, labels = generate_video(spec)  # T x H x W x 3 uint8, T x H x W uint8
    float_frames = rgb.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)
    np.savez(path, frames=float_frames, labels0=labels[0])


def recipe_state_dict(seed: int) -> dict:
    """The recipe weights of ``seed`` with the released file's keys (``module.Encoder_M...``),
    built by the test suite's own code (``tests/recipe_weights.py``)."""
    spec = importlib.util.spec_from_file_location(
        "recipe_weights", REPO / "tests" / "recipe_weights.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.recipe_state_dict(seed)


def weights_file(weights: str, folder: Path) -> Path:
    """``recipe-N`` -> a temporary ``.pth`` of recipe seed N; anything else is a checkpoint path."""
    if weights.startswith("recipe-"):
        seed = weights.removeprefix("recipe-")
        if not seed.isdigit():
            raise SystemExit(f"--weights: expected recipe-N (N a seed) or a file, got {weights!r}")
        path = folder / f"recipe-{seed}.pth"
        torch.save(recipe_state_dict(int(seed)), path)
        return path
    path = Path(weights)
    if not path.is_file():
        raise SystemExit(f"--weights: {path} is not a file (nor recipe-N)")
    return path


def check_authors_repo(repo: Path) -> None:
    if not repo.is_dir():
        raise SystemExit(
            f"--authors-repo: {repo} is not a folder; expected a checkout of "
            "github.com/Hongje/HMMN (git clone https://github.com/Hongje/HMMN)"
        )
    missing = [name for name in ("model.py", "helpers.py") if not (repo / name).is_file()]
    if missing:
        raise SystemExit(
            f"--authors-repo: {repo} has no {' or '.join(missing)}; expected a checkout of "
            "github.com/Hongje/HMMN with model.py and helpers.py at its top"
        )


# ----------------------------------------------------------------------------------------------------
# The children: one implementation each, one JSON line on stdout


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def summarise(name: str, times: list[tuple[float, float]], probs: list[np.ndarray], out: Path):
    """The child's JSON: mean seconds per frame of each phase over frames 2.. (frame 1 warms up)."""
    np.save(out, np.stack(probs))  # N x (K+1) x H x W, frames 1..N
    timed = times[1:]
    memorize = float(np.mean([m for m, _ in timed]))
    segment = float(np.mean([s for _, s in timed]))
    return {
        "implementation": name,
        "frames": len(times),
        "timed_frames": len(timed),
        "memorize_s": memorize,
        "segment_s": segment,
        "total_s": memorize + segment,
        "peak_rss_mib": peak_rss_mib(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "probs": str(out),
    }


def disable_cuda() -> None:
    """Make the authors' CUDA calls no-ops, at run time, in this process only."""
    torch.cuda.is_available = lambda: False
    torch.cuda.synchronize = lambda *args, **kwargs: None
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self


def run_authors(repo: Path, video: dict, weights: Path, out: Path) -> dict:
    """Their eval_DAVIS.py Run_video loop (Mem_every=5) on their model.py, on the CPU."""
    import torch.nn.functional as F
    import torchvision.models

    disable_cuda()
    resnet50 = torchvision.models.resnet50
    # their encoders call resnet50(pretrained=True): build it without a download instead
    torchvision.models.resnet50 = lambda *args, **kwargs: resnet50(weights=None)
    sys.path.insert(0, str(repo))
    import model as authors  # their model.py

    torch.set_grad_enabled(False)  # as their eval_DAVIS.py
    net = torch.nn.DataParallel(authors.HMMN())
    net.eval()
    state = torch.load(weights, map_location="cpu", weights_only=True)
    if all(key.startswith("module.") for key in state):
        net.load_state_dict(state)
    else:
        net.module.load_state_dict(state)

    frames = torch.from_numpy(video["frames"])  # T x 3 x H x W
    T, _, H, W = frames.shape
    labels0 = torch.from_numpy(video["labels0"].astype(np.int64))
    K = int(labels0.max())
    Fs = frames.permute(1, 0, 2, 3).unsqueeze(0)  # 1 x 3 x T x H x W
    Es = torch.zeros(1, K + 1, T, H, W)
    Es[0, :, 0] = F.one_hot(labels0, K + 1).permute(2, 0, 1).float()
    num_objects = torch.tensor([K])
    to_memorize = [int(i) for i in np.arange(0, T, step=MEM_EVERY)]
    memory = [None] * 6  # k4, v4, k3, v3, k2, v2 kept: r4 on schedule, r3 and r2 of frame 0
    times, probs = [], []
    for t in range(1, T):
        start = time.perf_counter()
        prev = net(Fs[:, :, t - 1], Es[:, :, t - 1], num_objects)  # k4, v4, k3, v3, k2, v2
        memorized = time.perf_counter()
        if t - 1 == 0:  # only prev memory
            this = list(prev)
        else:
            this = [torch.cat([kept, new], dim=2) for kept, new in zip(memory, prev, strict=True)]
        logit = net(Fs[:, :, t], *this, num_objects)
        Es[:, :, t] = F.softmax(logit, dim=1)
        if t - 1 in to_memorize:
            memory[:2] = this[:2]
        if t - 1 == 0:
            memory[2:] = this[2:]
        end = time.perf_counter()
        times.append((memorized - start, end - memorized))
        probs.append(Es[0, :, t].numpy().copy())
    return summarise("authors", times, probs, out)


def run_hmmnlab(
    video: dict, weights: Path, out: Path, *, fast: bool = True, dtype: str = "float32"
) -> dict:
    """hmmnlab's propagate() (mem_every=5) with a hook point marking the end of memorize.

    ``fast``: as the commands run it (:func:`hmmnlab.allocator.keep_freed_memory`, the fast
    inference path of :mod:`hmmnlab.model.fast`); otherwise the readable model as it loads.
    ``dtype``: ``"bfloat16"`` runs the fast path under bfloat16 autocast."""
    from hmmnlab.allocator import keep_freed_memory
    from hmmnlab.inference import propagate
    from hmmnlab.weights import load_model

    if fast:
        keep_freed_memory()
    model = load_model(weights, fast=fast)  # strict, from the released key names
    frames = [torch.from_numpy(frame) for frame in video["frames"]]  # 3 x H x W float32
    marks = []

    def memorized(value, ctx):  # the memory encoder of frame t-1 has finished
        marks.append(time.perf_counter())

    results = propagate(
        model, frames, video["labels0"], mem_every=MEM_EVERY, device="cpu", dtype=dtype,
        hooks={"memory_features.v2": memorized},
    )  # fmt: skip
    next(results)  # frame 0: the given mask
    times, probs = [], []
    while True:
        start = time.perf_counter()
        try:
            result = next(results)
        except StopIteration:
            break
        end = time.perf_counter()
        times.append((marks[-1] - start, end - marks[-1]))
        probs.append(result.probs.numpy().copy())
    name = BFLOAT16 if dtype == "bfloat16" else "hmmnlab" if fast else "hmmnlab-readable"
    return summarise(name, times, probs, out)


def child_main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    video = dict(np.load(args.video))
    if args.child == "authors":
        if args.same_allocator:
            from hmmnlab.allocator import keep_freed_memory

            keep_freed_memory()
        report = run_authors(Path(args.authors_repo), video, Path(args.weights_file), args.probs)
    else:
        fast = args.child != "hmmnlab-readable"
        dtype = "bfloat16" if args.child == BFLOAT16 else "float32"
        report = run_hmmnlab(video, Path(args.weights_file), args.probs, fast=fast, dtype=dtype)
    print(json.dumps(report), flush=True)


# ----------------------------------------------------------------------------------------------------
# The parent


def run_child(name: str, args: argparse.Namespace, video: Path, weights: Path, probs: Path) -> dict:
    command = [
        sys.executable, str(Path(__file__).resolve()), "--child", name, "--video", str(video),
        "--weights-file", str(weights), "--probs", str(probs), "--threads", str(args.threads),
        "--authors-repo", str(args.authors_repo or ""),
    ] + (["--same-allocator"] if args.same_allocator else [])  # fmt: skip
    env = dict(os.environ, MPLBACKEND="Agg")
    env.update({var: str(args.threads) for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise SystemExit(f"the {name} run failed (exit status {done.returncode}):\n{tail}")
    return json.loads(lines[-1])


def summary_table(runs: dict[str, list[dict]]) -> tuple[str, dict]:
    """Medians over the runs of each implementation and the ratios authors / hmmnlab (and, with
    a bfloat16 run, authors / bfloat16 and hmmnlab / bfloat16)."""
    medians = {
        name: {
            **{p: statistics.median(r[f"{p}_s"] for r in reports) for p in PHASES},
            "peak_rss_mib": max(r["peak_rss_mib"] for r in reports),
        }
        for name, reports in runs.items()
    }
    columns = (*PHASES, "peak_rss_mib")
    ratios = {c: medians["authors"][c] / medians["hmmnlab"][c] for c in columns}
    readable = {c: medians["authors"][c] / medians["hmmnlab-readable"][c] for c in columns}
    lines = [
        f"{'':18s}{'memorize':>10s}{'segment':>10s}{'total':>10s}{'peak RSS':>10s}",
        f"{'':18s}{'s/frame':>10s}{'s/frame':>10s}{'s/frame':>10s}{'MiB':>10s}",
    ]
    for name in runs:
        m = medians[name]
        lines.append(
            f"{name:18s}" + "".join(f"{m[p]:10.3f}" for p in PHASES) + f"{m['peak_rss_mib']:10.0f}"
        )
    lines.append(f"{'authors/hmmnlab':18s}" + "".join(f"{ratios[c]:10.2f}" for c in columns))
    lines.append(f"{'authors/readable':18s}" + "".join(f"{readable[c]:10.2f}" for c in columns))
    figures = {"medians": medians, "ratios": ratios, "ratios_readable": readable}
    if BFLOAT16 in medians:
        for over, key in (("authors", "ratios_bfloat16"), ("hmmnlab", "ratios_hmmnlab_bfloat16")):
            figures[key] = {c: medians[over][c] / medians[BFLOAT16][c] for c in columns}
            lines.append(f"{over + '/bfloat16':18s}"
                         + "".join(f"{figures[key][c]:10.2f}" for c in columns))  # fmt: skip
    return "\n".join(lines), figures


def parent_main(args: argparse.Namespace) -> None:
    if args.authors_repo is None:
        raise SystemExit("--authors-repo PATH is required (a checkout of github.com/Hongje/HMMN)")
    args.authors_repo = Path(args.authors_repo).resolve()
    check_authors_repo(args.authors_repo)
    if args.frames < 2:
        raise SystemExit(f"--frames must be >= 2 (frame 1 warms up), got {args.frames}")
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be >= 1, got {args.repeats}")
    from hmmnlab import ops

    padding = ops.padding_for(args.height, args.width)
    r4 = ((args.height + padding.top + padding.bottom) // 16) * (
        (args.width + padding.left + padding.right) // 16
    )
    if r4 < TOPK:
        raise SystemExit(
            f"{args.height} x {args.width} has {r4} r4 positions; the authors' top-k (k = {TOPK}) "
            "needs at least 32 at frame 1 (e.g. 96 x 128 or larger)"
        )
    with tempfile.TemporaryDirectory(prefix="bench-vs-authors-") as tmp:
        folder = Path(tmp)
        video = folder / "video.npz"
        make_video(video, frames=args.frames, height=args.height, width=args.width,
                   objects=args.objects)  # fmt: skip
        weights = weights_file(args.weights, folder)
        names = IMPLEMENTATIONS + ((BFLOAT16,) if args.dtype == "bfloat16" else ())
        runs: dict[str, list[dict]] = {name: [] for name in names}
        for repeat in range(args.repeats):
            for name in names:  # alternately: A B A B
                probs = folder / f"{name}-{repeat}.npy"
                runs[name].append(run_child(name, args, video, weights, probs))
                print(f"  run {repeat + 1} {name}: {runs[name][-1]['total_s']:.3f} s/frame",
                      file=sys.stderr, flush=True)  # fmt: skip
        probs = {name: np.load(runs[name][0]["probs"]) for name in names}
        shapes = {p.shape for p in probs.values()}
        if len(shapes) != 1:
            raise SystemExit(f"probabilities differ in shape: {sorted(shapes)}")
        pairs = {}  # (a, b) -> (max |a - b|, share of pixels with the same label)
        compared = [("authors", "hmmnlab-readable"), ("authors", "hmmnlab"),
                    ("hmmnlab-readable", "hmmnlab")]  # fmt: skip
        if BFLOAT16 in names:
            compared += [("authors", BFLOAT16), ("hmmnlab", BFLOAT16)]
        for a, b in compared:
            pairs[a, b] = (float(np.abs(probs[a] - probs[b]).max()),
                           float((probs[a].argmax(axis=1) == probs[b].argmax(axis=1)).mean()))  # fmt: skip
    table, figures = summary_table(runs)
    print(
        f"authors' HMMN ({args.authors_repo}) and hmmnlab on the CPU, {args.threads} thread(s), "
        f"{args.height} x {args.width}, {args.objects} object(s), {args.frames} frames after "
        f"frame 0 (frame 1 warms up), weights {args.weights}; medians of {args.repeats} "
        "alternating run(s) each, peak RSS the largest"
    )
    print(table)
    for name in runs:
        totals = " ".join(f"{r['total_s']:.3f}" for r in runs[name])
        print(f"  {name} total s/frame per run: {totals}")
    print(f"probabilities over frames 1..{args.frames}:")
    for (a, b), (difference, agree) in pairs.items():
        print(f"  max |{a} - {b}| = {difference:.3g}; labels agree on {100 * agree:.3f}% of pixels")
    if args.json:
        settings = {k: str(v) for k, v in vars(args).items() if k not in CHILD_ARGS}
        summary = {"settings": settings, "runs": runs, **figures,
                   "max_abs_prob_difference": {f"{a} - {b}": d for (a, b), (d, _) in pairs.items()},
                   "label_agreement": {f"{a} - {b}": g for (a, b), (_, g) in pairs.items()}}  # fmt: skip
        Path(args.json).write_text(json.dumps(summary, indent=1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors-repo", help="a checkout of github.com/Hongje/HMMN")
    parser.add_argument("--frames", type=int, default=8, help="frames to segment after frame 0")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads of each run")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each implementation")
    parser.add_argument("--weights", default="recipe-1", help="recipe-N (seed N) or a .pth file")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument(
        "--same-allocator",
        action="store_true",
        help="give the authors' run the allocator setting hmmnlab's commands use "
        "(hmmnlab.allocator.keep_freed_memory)",
    )
    # the children (run by the parent)
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="bfloat16: also hmmnlab's fast path in bfloat16, in the same alternation",
    )
    parser.add_argument("--child", choices=(*IMPLEMENTATIONS, BFLOAT16), help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    parser.add_argument("--weights-file", help=argparse.SUPPRESS)
    parser.add_argument("--probs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args)
    else:
        parent_main(args)


if __name__ == "__main__":
    main()
