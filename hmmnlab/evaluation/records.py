"""What every command that writes shares: atomic writes, the output lock and the guards on its
paths; and what a segmentation run records about each video (its settings, the timing record that
marks it finished, its peak memory: :func:`run_settings`, :func:`read_record`, :class:`PeakMemory`).

The rules (STYLE.md, "Commands and files"): a command never writes inside a dataset folder it reads,
however the path is spelled (:func:`check_outside`); never replaces an existing file without
``--overwrite`` (:func:`check_overwrite`, :func:`check_fresh_folder`); never leaves a half-written
file (:func:`atomic_path` and the ``write_*_atomically`` helpers: a temporary file beside the
target, then :func:`os.replace`; the temporary file is removed on any failure); and takes a lock on
its output (:func:`output_lock`). Errors are ValueError (a path the user gave is wrong) or
:class:`WriteError` (a RuntimeError: the device is full, the folder is not writable): the command
line prints them as one line, without a traceback.

This module imports nothing heavy at import time (no torch, no numpy; the run records import torch
inside their functions): the guards run before any work.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import resource
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # names for the annotations only: importing them would pull in torch
    import torch

    from hmmnlab.config import ReadConfig
    from hmmnlab.model import HMMN

#: The lock file a command holds in its output folder (:func:`output_lock`).
LOCK_NAME = ".hmmnlab.lock"

#: What a dataset written by ``hmmnlab samples`` holds at its root: an existing one is not replaced
#: without ``--overwrite`` (:func:`check_fresh_folder`).
DAVIS_FOLDERS = ("JPEGImages", "Annotations", "ImageSets")
YOUTUBE_VOS_FOLDERS = ("train", "valid", "valid_all_frames", "test", "test_all_frames")

#: Errors of a write that mean the device holding the file is full.
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class WriteError(RuntimeError):
    """A file could not be written (no space left, not writable); the message names the file."""


# ----------------------------------------------------------------------------------------------------
# Atomic writes


def temporary_path(path: Path) -> Path:
    """The temporary file beside ``path`` that :func:`atomic_path` writes first (hidden, named by
    the target and this process, keeping the target's suffix for writers that add one)."""
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


def _is_no_space(err: BaseException) -> bool:
    if isinstance(err, OSError) and err.errno in NO_SPACE_ERRNOS:
        return True
    text = str(err)
    # torch.save reports a short write of its zip writer as "[enforce fail at
    # inline_container.cc:...] unexpected pos ..." or "file write failed"
    return isinstance(err, RuntimeError) and ("unexpected pos" in text or "write failed" in text)


def write_error(err: BaseException, path: Path) -> WriteError | None:
    """The clear error of a failed write of ``path`` (None: not an environment problem)."""
    if _is_no_space(err):
        return WriteError(f"no space left on the device holding {path}; nothing written there")
    if isinstance(err, PermissionError) or (
        isinstance(err, OSError) and err.errno in (errno.EACCES, errno.EROFS, errno.EPERM)
    ):
        return WriteError(f"cannot write {path}: {err.strerror or err} (is its folder writable?)")
    return None


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error it replaces
    ``path`` (:func:`os.replace`, atomic on one file system). On any error the temporary file is
    removed and ``path`` is left as it was; a full device or a folder that cannot be written is a
    :class:`WriteError` naming ``path``."""
    path = Path(path)
    temporary = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield temporary
        os.replace(temporary, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        clear = write_error(err, path)
        if clear is not None:
            raise clear from err
        raise


def write_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """``write(temporary)`` then the rename (:func:`atomic_path`); returns ``path``."""
    with atomic_path(path) as temporary:
        write(temporary)
    return Path(path)


def write_bytes_atomically(path: str | Path, data: bytes) -> Path:
    return write_atomically(path, lambda temporary: temporary.write_bytes(data))


def write_text_atomically(path: str | Path, text: str) -> Path:
    return write_atomically(path, lambda temporary: temporary.write_text(text))


def write_json_atomically(path: str | Path, data: object) -> Path:
    """``data`` as JSON (indent 1) to ``path``: never a half-written file."""
    return write_text_atomically(path, json.dumps(data, indent=1))


# ----------------------------------------------------------------------------------------------------
# The output lock


@contextlib.contextmanager
def output_lock(
    out: str | Path, *, command: str = "eval", name: str = LOCK_NAME, remove: bool = True
):
    """Hold an exclusive lock on the output folder ``out`` (the file ``out/name``, holding this
    process's id) while the block runs; a second writer is refused at once with a RuntimeError
    naming the folder and the process holding it. ``command`` names the command in the message.
    With ``remove`` (the default) the lock file is deleted (still locked) when the block ends, so
    nothing is left in the user's folder; a writer that locked a deleted lock file sees it is no
    longer at ``out/name`` and is refused too."""
    out = Path(out)
    path = out / name
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")  # noqa: SIM115 - held for the whole block
    except OSError as err:
        raise write_error(err, path) or err from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if not _same_file(handle, path):  # deleted by the writer that held it
                raise BlockingIOError
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RuntimeError(
                f"another hmmnlab {command} is writing to {out} (lock {path} held by process "
                f"{holder}); wait for it to finish or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            if remove:
                with contextlib.suppress(OSError):
                    path.unlink()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _same_file(handle, path: Path) -> bool:
    """Whether the open ``handle`` is still the file at ``path``."""
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except OSError:
        return False


def file_lock(path: str | Path, *, command: str):
    """:func:`output_lock` for one output file: a lock file ``.<name>.lock`` beside it, removed
    when the write ends (nothing is left beside the user's file)."""
    path = Path(path)
    return output_lock(path.parent, command=command, name=f".{path.name}.lock", remove=True)


# ----------------------------------------------------------------------------------------------------
# Guards on output paths (before any work)


def check_writable(path: str | Path, what: str) -> None:
    """Refuse a path that cannot be created or written: one of its parents is a file, or the
    nearest existing folder (``path`` itself when it is one) is not writable."""
    path = Path(path)
    if path.is_dir():
        if not os.access(path, os.W_OK):
            raise ValueError(f"{what} {path}: folder {path} is not writable")
        return
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{what} {path}: expected {parent} to be a folder, found a file")
            if not os.access(parent, os.W_OK):
                raise ValueError(f"{what} {path}: folder {parent} is not writable")
            return


def check_output_dir(out: str | Path, what: str = "--out") -> Path:
    """Refuse an output folder that is a file or cannot be written; returns it as a Path."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{what} {out}: expected a folder, found a file")
    check_writable(out, what)
    return out


def check_output_file(path: str | Path, what: str, *, overwrite: bool = False) -> Path:
    """Refuse an output file path that is a folder, cannot be written, or exists (unless
    ``overwrite``); returns it as a Path."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path}: expected a file, found a folder")
    check_writable(path, what)
    check_overwrite(path, what, overwrite=overwrite)
    return path


def check_overwrite(path: str | Path, what: str, *, overwrite: bool = False) -> None:
    """Refuse an existing file at ``path`` unless ``overwrite``."""
    path = Path(path)
    if not overwrite and path.exists():
        raise ValueError(
            f"{what} {path} already exists; give --overwrite to replace it or choose another path"
        )


def check_fresh_folder(
    out: str | Path, names: Iterable[str], what: str = "--out", *, overwrite: bool = False
) -> Path:
    """Refuse an output folder that is a file, cannot be written, or already holds any of
    ``names`` (the files or folders the command would write there), unless ``overwrite``."""
    out = check_output_dir(out, what)
    if not overwrite and out.is_dir():
        found = sorted(name for name in names if (out / name).exists())
        if found:
            raise ValueError(
                f"{what} {out} already holds {', '.join(found)}; give --overwrite to replace "
                "them or choose another folder"
            )
    return out


def is_inside(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it, once both are resolved (symlinks,
    ``..``, relative paths; a path that does not exist yet resolves through its parents)."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


def check_outside(out: str | Path, what: str, inputs: Iterable[tuple[str, str | Path]]) -> None:
    """Refuse an output path inside (or equal to) any folder the command reads: ``inputs`` is
    (option, folder) pairs, e.g. ``[("--root", root), ("--root", root / "Annotations" / "480p")]``
    (give the folders read through symlinks too: each is resolved on its own)."""
    for option, folder in inputs:
        if folder is not None and Path(folder).exists() and is_inside(out, folder):
            raise ValueError(
                f"{what} {Path(out).resolve()} lies inside {option} {Path(folder).resolve()} "
                "(a folder this command reads); choose a folder outside it"
            )


# ----------------------------------------------------------------------------------------------------
# What a segmentation run records per video (the DAVIS and YouTube-VOS runs, the ablation)


class PeakMemory:
    """Peak memory while a block runs, in MiB: allocated GPU memory on CUDA; on the CPU, the peak
    resident set of the process (reset at the start where Linux allows, else since process
    start)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mib = float("nan")

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            try:  # "5" resets the peak resident set size (VmHWM) of this process
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                pass
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            import torch

            self.mib = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        try:
            status = Path("/proc/self/status").read_text()
            self.mib = int(status.split("VmHWM:")[1].split()[0]) / 1024
        except (OSError, IndexError, ValueError):
            self.mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timing_path(out: Path, name: str) -> Path:
    """The record of video ``name`` in a run's output folder: ``out/timing/<name>.json``."""
    return out / "timing" / f"{name}.json"


def model_fingerprint(model: HMMN) -> str:
    """sha256 over the model's state dict (names, dtypes, shapes and bytes, in order)."""
    import torch

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
    """What a video's masks depend on; stored with them and compared when resuming. ``dtype``
    None: the process-wide default (:func:`hmmnlab.precision.get_default_dtype`)."""
    from importlib.metadata import PackageNotFoundError, version

    from hmmnlab.precision import resolve_dtype

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
    """The timing record of a video, or None when it is absent or unreadable (empty, cut off)."""
    path = timing_path(out, name)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
