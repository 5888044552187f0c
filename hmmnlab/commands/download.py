"""``hmmnlab download davis`` (its options: :mod:`hmmnlab.commands.cli`; the fetching, checking and
unpacking: :mod:`hmmnlab.data.download`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hmmnlab.data.download import (
    DOWNLOADS,
    archive_for,
    archive_name,
    check_layout,
    check_sha256,
    check_size,
    fetch,
    is_unpacked,
    unpack,
)
from hmmnlab.evaluation import records


def run(args: argparse.Namespace) -> int:
    """``hmmnlab download davis`` (its options: :mod:`hmmnlab.commands.cli`)."""
    official = archive_for(args.year, args.resolution)
    root = records.check_output_dir(args.root, "--root")
    progress = not args.no_progress
    folder = f"{args.resolution} (DAVIS {args.year})"
    if is_unpacked(root, args.resolution) and not args.overwrite:
        print(
            f"{root} already holds ImageSets, JPEGImages/{args.resolution} and "
            f"Annotations/{args.resolution}; left alone (--overwrite unpacks again)"
        )
        return 0
    with records.output_lock(root / DOWNLOADS, command="download", remove=True):
        if args.archive is not None:
            archive = Path(args.archive)
            if not archive.is_file():
                raise FileNotFoundError(f"--archive {archive}: no such file")
            known = archive.name == official.name  # the official archive, fetched by hand
            check_size(archive, official.size if known else None, what=official.source)
            check_sha256(archive, args.sha256 or (official.sha256 if known else None))
        else:
            url = args.url or official.url
            known = url == official.url  # the table's values belong to the official address
            archive = root / DOWNLOADS / archive_name(url)
            fetch(
                url,
                archive,
                size=official.size if known else None,
                sha256=args.sha256 or (official.sha256 if known else None),
                progress=progress,
            )
        count = unpack(archive, root, overwrite=args.overwrite, progress=progress)
        check_layout(root, args.resolution, archive)
    print(f"unpacked {count} files of {archive.name} into {root}: DAVIS layout, {folder}")
    if args.archive is None:
        print(f"the archive stays in {archive}; delete it to free {archive.stat().st_size} bytes")
    return 0
