"""What a segmentation run records about each video, shared by the DAVIS and YouTube-VOS runners
(:mod:`hmmnlab.evaluate`, :mod:`hmmnlab.evaluate_youtube`) and the ablation: the settings its
masks depend on, the timing record that marks a video finished, and the peak memory."""

from __future__ import annotations

import hashlib
import json
import resource
from pathlib import Path

import torch

from hmmnlab.config import ReadConfig
from hmmnlab.model import HMMN
from hmmnlab.precision import resolve_dtype


class PeakMemory:
    """Peak memory while a block runs, in MiB: allocated GPU memory on CUDA; on the CPU, the peak
    resident set of the process (reset at the start where Linux allows, else since process start)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mib = float("nan")

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            try:  # "5" resets the peak resident set size (VmHWM) of this process
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                pass
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.mib = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        try:
            status = Path("/proc/self/status").read_text()
            self.mib = int(status.split("VmHWM:")[1].split()[0]) / 1024
        except (OSError, IndexError, ValueError):
            self.mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timing_path(out: Path, name: str) -> Path:
    return out / "timing" / f"{name}.json"


def model_fingerprint(model: HMMN) -> str:
    """sha256 over the model's state dict (names, dtypes, shapes and bytes, in order)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def run_settings(
    model: HMMN,
    read: ReadConfig,
    *,
    resolution: str,
    overlays: bool,
    amp: bool = False,
    dtype: str | None = None,
) -> dict:
    """What a sequence's masks depend on; stored with them and compared when resuming. ``dtype``
    None: the process-wide default (:func:`hmmnlab.precision.get_default_dtype`)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        code_version = version("hmmnlab")
    except PackageNotFoundError:
        code_version = "unknown"
    return {
        "weights_sha256": model_fingerprint(model),
        "model_config": model.config.to_dict(),
        "read": read.to_dict(),
        "resolution": resolution,
        "overlays": overlays,
        "amp": amp,
        "dtype": resolve_dtype(dtype),
        "hmmnlab_version": code_version,
    }


def read_record(out: Path, name: str) -> dict | None:
    """The timing record of a sequence, or None when it is absent or unreadable (empty, cut off)."""
    path = timing_path(out, name)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
