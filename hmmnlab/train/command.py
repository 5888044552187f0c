"""``hmmnlab train``'s data: synthetic, look-alike and DAVIS-layout videos (the command's run
function: :mod:`hmmnlab.commands.train`; its options: :mod:`hmmnlab.commands.cli`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from hmmnlab.train.clips import ArrayVideo, Video, open_davis


def synthetic_videos(
    n: int, *, seed: int, prefix: str, cache: str | Path | None = None, split: str = "train"
) -> list[Video]:
    """``n`` random synthetic videos (:func:`hmmnlab.data.synthetic.random_specs`), generated in
    memory, or written once into ``cache`` (DAVIS 2017 layout, split ``split``) and read from it."""
    from hmmnlab.data.synthetic import generate_video, random_specs, write_davis

    specs = random_specs(max(n, 0), seed, prefix=prefix)
    return _generated_videos(specs, generate_video, write_davis, cache, split, prefix)


def lookalike_videos(
    n: int, *, seed: int, prefix: str, cache: str | Path | None = None, split: str = "train"
) -> list[Video]:
    """``n`` look-alike videos (:func:`hmmnlab.data.lookalikes.lookalike_specs`; grades in turn),
    in memory, or written once into ``cache`` (DAVIS 2017 layout, split ``split``)."""
    from hmmnlab.data.lookalikes import generate_lookalike, lookalike_specs, write_lookalikes

    specs = lookalike_specs(max(n, 0), seed, prefix=prefix)
    return _generated_videos(specs, generate_lookalike, write_lookalikes, cache, split, prefix)


def _generated_videos(specs, generate, write, cache, split: str, prefix: str) -> list[Video]:
    """The videos of ``specs``: ``generate(spec)`` in memory, or ``write(cache, specs, split=)``
    once (when ``cache``'s list of the split differs) and read back from the DAVIS layout."""
    if not specs:
        return []
    if cache is None:
        return [ArrayVideo(s.name, *generate(s)) for s in tqdm(specs, desc=f"{prefix} videos")]
    cache = Path(cache)
    listed = cache / "ImageSets" / "2017" / f"{split}.txt"
    if not listed.is_file() or listed.read_text().split() != [s.name for s in specs]:
        write(cache, specs, split=split)
    return open_davis(cache, split=split)


def davis_videos(roots: Sequence[str], hold_out: Sequence[str]) -> tuple[list[Video], list[Video]]:
    """The sequences of DAVIS-layout folders, split into (training, held-out by name)."""
    train_set, held = [], []
    for root in roots:
        for video in open_davis(root):
            (held if video.name in hold_out else train_set).append(video)
    missing = sorted(set(hold_out) - {v.name for v in held})
    if missing:
        raise ValueError(f"--hold-out names no sequence of the --davis folders: {missing}")
    return train_set, held
