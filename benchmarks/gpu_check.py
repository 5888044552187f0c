"""The CUDA checks of hmmnlab in one prepared run (about 6 minutes on one H200, 8 at most): parity,
AMP accuracy, speed, memory and a training step, written to one JSON file.

    python benchmarks/gpu_check.py --out RESULT.json [--quick] [--budget-s 420] [--device cpu]

Parts (each with its own ``status``: ``"ok"``, ``"skipped: ..."`` or ``"error: ..."``, so that one
failing part loses nothing of the others; the file is rewritten after every part):

``cpu_parity``
    hmmnlab on the CPU against the authors' probabilities of the public fixture
    (``tests/data/hmmn_fixture_public.npz``, recipe weights of seed 1), as ``tests/test_parity.py``.
``cuda_fp32_parity``
    the same video on CUDA in float32 (TF32 off): max |CUDA - CPU| and |CUDA - fixture| of the
    probabilities, required within 1e-4; the run with PyTorch's default TF32 settings outside
    (cuDNN convolutions in TF32) is reported beside it, not checked. (hmmnlab's float32 turns TF32
    off while it runs, ``precision.ExactFloat32``, since the one GPU run of this check measured
    0.13 with TF32 on: the two numbers should now agree.)
``amp_jf``
    J&F of the bundled samples (``data_samples``, the ``demo`` weights) in float32 and under
    autocast in bfloat16 and float16; each AMP J&F required within 0.01 of float32's.
``speed_480p``
    seconds per frame at 480 x 854 with 2 objects (hmmn preset, recipe weights) in float32, bf16 and
    fp16, timed with ``torch.cuda.synchronize``, frame 1 and 2 excluded; peak allocated memory.
``memory_1000_frames``
    peak ``torch.cuda.max_memory_allocated`` of a 1000-frame 480p video (frames made on the fly on
    the GPU, never stored) without and with ``ReadConfig.max_memory_frames``, beside
    :func:`hmmnlab.evaluation.resources.peak_bytes`'s estimate; a run that reaches its share of the
    time budget stops and says at which frame.
``train_step``
    seconds per optimizer step of the demo preset (4 clips x 3 frames, 192 px crops, 2 objects),
    float32 and float16 autocast with a GradScaler, as ``hmmnlab.train.loop`` trains.

Without CUDA every CUDA part is ``"skipped: no CUDA"`` and the script still writes the file and
exits 0. ``--quick`` runs tiny sizes (for tests); ``--device cpu`` runs the CUDA parts on the CPU
instead, to try the script where there is no GPU (its figures are not GPU figures; float16 is
skipped there: torch emulates it on a CPU, and hmmnlab runs ``--amp`` in float32). The exit status
is 1 when a part failed or a check did not pass, else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "data" / "hmmn_fixture_public.npz"
CHECKSUMS = REPO / "tests" / "data" / "weights_checksums.json"
PARITY_TOL = 1e-4
JF_TOL = 0.01
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: float16 autocast is CUDA's (hmmnlab's --amp); on a CPU torch emulates it, about 50 x slower
#: than float32 (14.8 against 0.29 s a frame at 96 x 128, Intel Xeon), and hmmnlab never runs it
NO_FLOAT16 = {"skipped": "float16 autocast is for CUDA (hmmnlab's --amp runs float32 on a CPU)"}


def precisions_on(device: torch.device) -> dict:
    """The precisions a part runs on ``device``: float16 only on CUDA."""
    return {k: v for k, v in PRECISIONS.items() if k != "float16" or device.type == "cuda"}


# sizes of the full run and of --quick
FULL = dict(
    amp_sequences=None,
    amp_frames=None,
    speed_size=(480, 854),
    speed_frames=20,
    memory_size=(480, 854),
    memory_frames=1000,
    memory_cap=10,
    train_batch=4,
    train_frames=3,
    train_crop=192,
    train_steps=5,
)
QUICK = dict(
    amp_sequences=["twins"],
    amp_frames=4,
    speed_size=(96, 128),
    speed_frames=4,
    memory_size=(96, 128),
    memory_frames=14,
    memory_cap=2,
    train_batch=2,
    train_frames=3,
    train_crop=64,
    train_steps=2,
)


class Check:
    """The results file: environment, then one entry per part, rewritten after each part."""

    def __init__(self, out: Path, budget_s: float) -> None:
        self.out, self.budget_s, self.start = out, budget_s, time.perf_counter()
        self.data: dict = {"script": "benchmarks/gpu_check.py", "parts": {}}

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def write(self) -> None:
        self.data["seconds"] = round(self.elapsed(), 1)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_suffix(self.out.suffix + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=_plain) + "\n")
        tmp.replace(self.out)

    def part(self, name: str, fn: Callable[[], dict], *, skip: str | None = None) -> dict:
        """Run one part; its dict (or its skip reason, or its error) goes into the file."""
        if skip is None and self.left() <= 0:
            skip = f"time budget of {self.budget_s:.0f} s spent"
        if skip is not None:
            result = {"status": f"skipped: {skip}"}
        else:
            start = time.perf_counter()
            try:
                result = {"status": "ok", **fn()}
            except Exception as err:  # a failing part must not lose the others
                result = {
                    "status": f"error: {type(err).__name__}: {err}".strip()[:2000],
                    "traceback": traceback.format_exc().splitlines()[-12:],
                }
            result["seconds"] = round(time.perf_counter() - start, 2)
        self.data["parts"][name] = result
        self.write()
        print(f"{name}: {result['status'][:200]}", flush=True)
        return result


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.dtype | torch.device | Path):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 for CUDA matrix products and cuDNN convolutions on or off inside the block."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def peak_memory(device: torch.device):
    from hmmnlab.evaluation.records import PeakMemory  # CUDA: max_memory_allocated; CPU: peak RSS

    return PeakMemory(device)


def environment(device: torch.device | None) -> dict:
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "device": str(device) if device else None,
        "tf32_matmul_default": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn_default": torch.backends.cudnn.allow_tf32,
    }
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    env["hmmnlab_commit"] = commit.stdout.strip() or None
    changes = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    )
    env["hmmnlab_uncommitted_changes"] = bool(changes.stdout.strip())
    if device is not None and device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
        env["gpu_memory_gib"] = torch.cuda.get_device_properties(device).total_memory / 2**30
    return env


# ----------------------------------------------------------------------------------------------------
# Models and videos


def recipe_weights(folder: Path, seed: int = 1) -> Path:
    """Recipe seed 1 (the fixtures' weights) saved like the released file, checked against its
    recorded sha256 (built by the tests' own code, ``tests/recipe_weights.py``)."""
    spec = importlib.util.spec_from_file_location(
        "recipe_weights", REPO / "tests" / "recipe_weights.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    state = module.recipe_state_dict(seed)
    expected = json.loads(CHECKSUMS.read_text())[f"seed{seed}"]["sha256_all_tensors"]
    if module.checksum(state) != expected:
        raise RuntimeError(f"recipe weights of seed {seed} do not match {CHECKSUMS.name}")
    path = folder / f"recipe-{seed}.pth"
    torch.save(state, path)
    return path


def first_labels(height: int, width: int, objects: int = 2) -> np.ndarray:
    """Two rectangles (objects 1 and 2) in an H x W label map."""
    labels = np.zeros((height, width), np.uint8)
    for k in range(1, objects + 1):
        top, left = height * k // 8, width * (2 * k - 1) // 8
        labels[top : top + height // 3, left : left + width // 5] = k
    return labels


def noise_frames(n: int, height: int, width: int, device: torch.device) -> Iterator[Tensor]:
    """``n`` frames (3 x H x W in [0, 1], on ``device``) of a smooth random field panning 2 pixels
    per frame, each cut from the field when it is asked for (nothing is stored)."""
    pan = 256
    generator = torch.Generator(device=device).manual_seed(0)
    field = torch.rand(
        1, 3, height // 8 + 1, (width + pan) // 8 + 1, generator=generator, device=device
    )
    field = torch.nn.functional.interpolate(field, size=(height, width + pan), mode="bilinear")[0]
    for t in range(n):
        shift = (2 * t) % (2 * pan)
        x0 = shift if shift < pan else 2 * pan - shift  # back and forth
        yield field[:, :, x0 : x0 + width]


def run_fixture(model, fixture: dict, device: torch.device) -> np.ndarray:
    """T x (K+1) x H x W probabilities of the fixture's video (as tests/test_parity.py runs it)."""
    from hmmnlab.inference import propagate

    results = propagate(
        model,
        fixture["frames"],
        fixture["label0"],
        mem_every=int(fixture["mem_every"]),
        device=device,
    )
    return np.stack([r.probs.float().cpu().numpy() for r in results])


# ----------------------------------------------------------------------------------------------------
# Parts


def part_cpu_parity(state: dict) -> dict:
    from hmmnlab.weights import load_model

    fixture = dict(np.load(FIXTURE))
    model = load_model(state["weights"])
    probs = run_fixture(model, fixture, torch.device("cpu"))
    state["cpu_probs"] = probs
    labels_equal = bool((probs.argmax(axis=1) == fixture["pred"]).all())
    difference = float(np.abs(probs - fixture["Es"]).max())
    return {
        "fixture": FIXTURE.name,
        "frames": len(probs),
        "max_abs_diff_vs_authors": difference,
        "labels_equal": labels_equal,
        "tolerance": PARITY_TOL,
        "passed": difference <= PARITY_TOL and labels_equal,
    }


def part_cuda_parity(state: dict, device: torch.device) -> dict:
    from hmmnlab.weights import load_model

    fixture = dict(np.load(FIXTURE))
    model = load_model(state["weights"], device=device)
    with tf32(False):
        probs = run_fixture(model, fixture, device)
    with tf32(True):  # cuDNN's default (convolutions in TF32): reported, not checked
        probs_tf32 = run_fixture(model, fixture, device)
    result = {
        "fixture": FIXTURE.name,
        "max_abs_diff_vs_authors": float(np.abs(probs - fixture["Es"]).max()),
        "labels_equal_authors": bool((probs.argmax(axis=1) == fixture["pred"]).all()),
        "tf32_max_abs_diff_vs_authors": float(np.abs(probs_tf32 - fixture["Es"]).max()),
        "tolerance": PARITY_TOL,
    }
    reference = state.get("cpu_probs")
    if reference is not None:
        result["max_abs_diff_vs_cpu"] = float(np.abs(probs - reference).max())
        result["tf32_max_abs_diff_vs_cpu"] = float(np.abs(probs_tf32 - reference).max())
    checked = [result["max_abs_diff_vs_authors"], result.get("max_abs_diff_vs_cpu", 0.0)]
    result["passed"] = max(checked) <= PARITY_TOL and result["labels_equal_authors"]
    return result


def sequence_jf(model, sequence, frames: int | None, device, dtype) -> tuple[float, float]:
    """Per sequence: (mean J, mean F) over its objects, frames 1..T-2 of the first ``frames``."""
    from hmmnlab.evaluation.metrics import evaluate_semisupervised
    from hmmnlab.inference import propagate

    count = min(frames or len(sequence), len(sequence))
    video = (sequence.frame(i) for i in range(count))
    with autocast(device, dtype):
        predicted = [
            r.labels.cpu().numpy()
            for r in propagate(model, video, sequence.first_mask(), device=device)
        ]
    truth = np.stack([sequence.mask(i) for i in range(count)])
    scores = evaluate_semisupervised(
        truth, np.stack(predicted).astype(np.uint8), name=sequence.name
    )
    return float(np.nanmean(scores.j, axis=1).mean()), float(np.nanmean(scores.f, axis=1).mean())


def part_amp_jf(sizes: dict, device: torch.device) -> dict:
    from hmmnlab.inside.lesson import sample_dataset
    from hmmnlab.weights import load_model

    dataset = sample_dataset()
    names = sizes["amp_sequences"] or dataset.sequences
    model = load_model("demo", device=device)
    result: dict = {"weights": "demo", "sequences": list(names), "frames": sizes["amp_frames"]}
    for precision, dtype in precisions_on(device).items():
        start = time.perf_counter()
        try:
            per = [
                sequence_jf(model, dataset[n], sizes["amp_frames"], device, dtype) for n in names
            ]
        except Exception as err:  # e.g. NaN probabilities: the other precisions still count
            result[precision] = {"error": f"{type(err).__name__}: {err}"[:500], "passed": False}
            continue
        j = float(np.mean([j for j, _ in per]))
        f = float(np.mean([f for _, f in per]))
        result[precision] = {
            "J&F": (j + f) / 2,
            "J": j,
            "F": f,
            "seconds": round(time.perf_counter() - start, 2),
        }
    if "error" in result["float32"]:
        raise RuntimeError(f"float32 J&F failed: {result['float32']['error']}")
    reference = result["float32"]["J&F"]
    result.setdefault("float16", NO_FLOAT16)
    reduced = [p for p in precisions_on(device) if p != "float32"]
    for precision in reduced:
        if "error" not in result[precision]:
            gap = abs(result[precision]["J&F"] - reference)
            result[precision]["abs_diff_vs_float32"] = gap
            result[precision]["passed"] = bool(gap <= JF_TOL)
    result["tolerance"] = JF_TOL
    result["passed"] = all(result[p]["passed"] for p in reduced)
    return result


def time_video(
    model, frames, labels, device, dtype, *, read=None, warmup: int = 2, deadline: float = math.inf
) -> dict:
    """Seconds per frame (synchronized) after ``warmup`` frames, and the peak memory."""
    from hmmnlab.inference import propagate

    times, done = [], 0
    if device.type == "cuda":
        torch.cuda.empty_cache()
    with peak_memory(device) as peak, autocast(device, dtype):
        results = propagate(model, frames, labels, read=read, device=device)
        next(results)  # frame 0: the given mask
        while True:
            synchronize(device)
            start = time.perf_counter()
            try:
                next(results)
            except StopIteration:
                break
            synchronize(device)
            times.append(time.perf_counter() - start)
            done += 1
            if time.perf_counter() > deadline:
                results.close()
                break
    timed = times[warmup:] or times
    return {
        "frames_segmented": done,
        "seconds_per_frame": float(np.mean(timed)),
        "seconds_per_frame_median": float(np.median(timed)),
        "peak_memory_mib": peak.mib,
    }


def part_speed(state: dict, sizes: dict, device: torch.device) -> dict:
    from hmmnlab.weights import load_model

    model = load_model(state["weights"], device=device)
    height, width = sizes["speed_size"]
    n = sizes["speed_frames"] + 1
    labels = first_labels(height, width)
    result: dict = {
        "size": [height, width],
        "objects": 2,
        "frames": n - 1,
        "warmup_frames": 2,
        "weights": "recipe seed 1 (hmmn preset)",
    }
    for precision, dtype in precisions_on(device).items():
        try:
            frames = noise_frames(n, height, width, device)
            result[precision] = time_video(model, frames, labels, device, dtype)
        except Exception as err:  # e.g. NaN under fp16: the other precisions still count
            result[precision] = {"error": f"{type(err).__name__}: {err}"[:500]}
    result.setdefault("float16", NO_FLOAT16)
    return result


def part_memory(state: dict, sizes: dict, device: torch.device, check: Check) -> dict:
    from hmmnlab.config import ReadConfig
    from hmmnlab.evaluation.resources import peak_bytes
    from hmmnlab.weights import load_model

    model = load_model(state["weights"], device=device)
    height, width = sizes["memory_size"]
    n = sizes["memory_frames"]
    labels = first_labels(height, width)
    result: dict = {"size": [height, width], "objects": 2, "frames": n, "precision": "float32"}
    reads = {
        "uncapped": ReadConfig(),
        f"max_memory_frames={sizes['memory_cap']}": ReadConfig(
            max_memory_frames=sizes["memory_cap"]
        ),
    }
    for index, (name, read) in enumerate(reads.items()):
        share = check.left() / (len(reads) - index) - 10  # leave the rest to the next parts
        deadline = time.perf_counter() + max(share, 1.0)
        try:
            frames = noise_frames(n, height, width, device)
            run = time_video(model, frames, labels, device, None, read=read, deadline=deadline)
            run["complete"] = run["frames_segmented"] == n - 1
            if not run["complete"]:
                run["stopped"] = (
                    f"time share of {share:.0f} s reached at frame {run['frames_segmented']}"
                )
            estimate = peak_bytes(height, width, 2, run["frames_segmented"] + 1, read)
            run["estimated_read_mib"] = (
                estimate / 2**20
            )  # hmmnlab.evaluation.resources, weights excluded
            result[name] = run
        except Exception as err:  # e.g. out of memory: the capped run still counts
            result[name] = {"error": f"{type(err).__name__}: {err}"[:500]}
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return result


def part_train(sizes: dict, device: torch.device) -> dict:
    from hmmnlab.config import ReadConfig
    from hmmnlab.train.loop import TrainConfig, build_model, set_train_mode, train_step
    from hmmnlab.train.squares import square_clips

    torch.manual_seed(0)
    crop, frames, batch = sizes["train_crop"], sizes["train_frames"], sizes["train_batch"]
    clips = square_clips(batch, frames=frames, crop=crop, objects=2, prefix="check")
    read = ReadConfig(mem_every=1)
    result: dict = {"preset": "demo", "clips": batch, "frames": frames, "crop": crop}
    for precision in ("float32", "float16"):
        amp = precision == "float16"
        if amp and device.type != "cuda":
            result[precision] = {"skipped": "float16 autocast training is for CUDA"}
            continue
        model = set_train_mode(build_model(TrainConfig(preset="demo", imagenet_init=False)))
        model = model.to(device)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        scaler = torch.amp.GradScaler(device.type, enabled=amp)
        times, losses = [], []
        for _ in range(sizes["train_steps"] + 1):  # the first step warms up
            synchronize(device)
            start = time.perf_counter()
            step = train_step(model, optimizer, clips, read, device=device, scaler=scaler, amp=amp)
            synchronize(device)
            times.append(time.perf_counter() - start)
            losses.append(step.loss)
        result[precision] = {
            "seconds_per_step": float(np.median(times[1:])),
            "losses": losses,
            "finite": bool(np.isfinite(losses).all()),
        }
    return result


# ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="the JSON file to write")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (tests)")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=420.0,
        help="seconds for all parts; a part started after it is skipped",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="the device of the CUDA parts (default cuda when available; cpu to "
        "try the script without a GPU)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    device = torch.device(args.device) if args.device else None
    if device is None and torch.cuda.is_available():
        device = torch.device("cuda")
    if device is not None and device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch finds no CUDA GPU")
    check = Check(args.out, args.budget_s)
    check.data.update({"quick": args.quick, "sizes": sizes, "environment": environment(device)})
    check.write()
    skip = None if device is not None else "no CUDA"
    state: dict = {}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:

        def build_weights() -> dict:
            state["weights"] = recipe_weights(Path(tmp))
            return {"seed": 1, "sha256_as_recorded": True, "file": CHECKSUMS.name}

        check.part("recipe_weights", build_weights)
        no_weights = None if "weights" in state else "no recipe weights"
        check.part("cpu_parity", lambda: part_cpu_parity(state), skip=no_weights)
        check.part(
            "cuda_fp32_parity", lambda: part_cuda_parity(state, device), skip=skip or no_weights
        )
        check.part("amp_jf", lambda: part_amp_jf(sizes, device), skip=skip)
        check.part("speed_480p", lambda: part_speed(state, sizes, device), skip=skip or no_weights)
        check.part("train_step", lambda: part_train(sizes, device), skip=skip)
        check.part(
            "memory_1000_frames",
            lambda: part_memory(state, sizes, device, check),
            skip=skip or no_weights,
        )
    parts = check.data["parts"]
    failed = [n for n, p in parts.items() if p["status"].startswith("error")]
    not_passed = [n for n, p in parts.items() if p.get("passed") is False]
    check.data["failed_parts"], check.data["checks_not_passed"] = failed, not_passed
    check.write()
    print(
        f"wrote {args.out} ({check.elapsed():.0f} s); failed: {failed or 'none'}; "
        f"checks not passed: {not_passed or 'none'}"
    )
    return 1 if failed or not_passed else 0


if __name__ == "__main__":
    sys.exit(main())
