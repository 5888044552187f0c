"""``hmmnlab download davis``: fetch the official DAVIS archives and unpack them into the DAVIS
layout.

One job: bring a DAVIS archive to ``ROOT/.downloads/NAME`` and unpack it into ``ROOT`` so that
``ROOT/JPEGImages/<resolution>/...``, ``ROOT/Annotations/<resolution>/...`` and
``ROOT/ImageSets/...`` are what :class:`hmmnlab.data.davis.DavisDataset` reads.

* The download streams to ``ROOT/.downloads/NAME.part`` and resumes an interrupted one with an HTTP
  ``Range: bytes=N-`` request (a server that answers 200 instead of 206 sends the whole file again,
  and the part restarts from zero). The size is checked against the server's Content-Length (and
  against :data:`ARCHIVES` for the official address), the sha256 when one is known, and only then is
  the part renamed to ``NAME`` (:func:`os.replace`): a file at the final name is a whole archive,
  and it is not fetched again.
* Unpacking strips the archive's top folder (``DAVIS/``), refuses members with absolute paths or
  ``..`` (zip-slip) before writing anything, writes every file to a temporary file beside its target
  then renames it, skips files already there with the same content (an interrupted unpack goes on
  where it stopped) and refuses to replace different ones without ``--overwrite``.
* ``--archive FILE`` unpacks an archive downloaded by hand (no network).

Errors are one line: ValueError (HTTP errors, a size or sha256 mismatch, a bad zip, a refused
member) or OSError (the server cannot be reached, the connection broke). Only the standard library
and tqdm are imported.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hmmnlab.evaluation import records


@dataclass(frozen=True)
class Archive:
    """One official DAVIS archive: its address, what it unpacks to, and what is known of it.

    ``size`` (bytes) and ``sha256`` are None where no documented value is known; ``source`` says
    where the known ones come from. ``resolutions``: the folders under ``JPEGImages`` and
    ``Annotations`` it holds."""

    url: str
    resolutions: tuple[str, ...]
    size: int | None = None
    sha256: str | None = None
    source: str = ""

    @property
    def name(self) -> str:
        return archive_name(self.url)


#: The checksums file of TensorFlow Datasets for DAVIS 2017 (url, size, sha256, name per line).
TFDS_CHECKSUMS = (
    "github.com/tensorflow/datasets, tensorflow_datasets/video/davis/checksums.tsv "
    "(commit 90b66237ad09c9e5b9b1bc61b646db7b1fb0713c)"
)

#: (year, --resolution) -> the official archive. DAVIS 2017: the trainval archives of
#: https://davischallenge.org/davis2017/code.html; their sizes and sha256 are TFDS_CHECKSUMS' values
#: (not measured by hmmnlab: no download was possible where this was written). DAVIS 2016: the one
#: archive of https://davischallenge.org/davis2016/code.html, holding 480p and 1080p frames; its
#: size and sha256 are UNKNOWN (no documented value found), so only the server's Content-Length is
#: checked for it.
ARCHIVES: dict[tuple[int, str], Archive] = {
    (2017, "480p"): Archive(
        "https://data.vision.ee.ethz.ch/csergi/share/davis/DAVIS-2017-trainval-480p.zip",
        ("480p",),
        size=832_766_765,
        sha256="e3d0b5b77c3d031b000a19e0e25e3e2cac65d183755601bc2cf066df1a2aa492",
        source=TFDS_CHECKSUMS,
    ),
    (2017, "Full-Resolution"): Archive(
        "https://data.vision.ee.ethz.ch/csergi/share/davis/DAVIS-2017-trainval-Full-Resolution.zip",
        ("Full-Resolution",),
        size=2_956_935_323,
        sha256="519494b320e7a333b98188e0f44e028f379c3312a1fc1a3e8bddd64b2c9ecfaf",
        source=TFDS_CHECKSUMS,
    ),
    (2016, "480p"): Archive(
        "https://graphics.ethz.ch/Downloads/Data/Davis/DAVIS-data.zip",
        ("480p", "1080p"),
        size=None,  # unknown
        sha256=None,  # unknown
        source="size and sha256 unknown",
    ),
}

#: Where the archives are kept, under --root.
DOWNLOADS = ".downloads"

#: Bytes read and written at a time.
CHUNK = 1 << 20

#: Seconds a connection may wait for the server.
TIMEOUT = 60.0


def archive_name(url: str) -> str:
    """The file name of ``url``'s path (``.../DAVIS-data.zip`` -> ``DAVIS-data.zip``)."""
    name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    if not name or name in (".", ".."):
        raise ValueError(f"--url {url}: expected an address ending in a file name, e.g. NAME.zip")
    return name


def archive_for(year: int, resolution: str) -> Archive:
    """The official archive of DAVIS ``year`` at ``resolution``."""
    if (year, resolution) in ARCHIVES:
        return ARCHIVES[year, resolution]
    if year == 2016:
        raise ValueError(
            "DAVIS 2016 comes as one archive holding 480p and 1080p frames: give --resolution 480p "
            "(the full-resolution frames are then in JPEGImages/1080p)"
        )
    known = ", ".join(f"{y} {r}" for y, r in ARCHIVES)
    raise ValueError(f"no DAVIS archive for year {year} at {resolution!r}; known: {known}")


# ----------------------------------------------------------------------------------------------------
# Checks


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str | None) -> None:
    """Refuse ``path`` when ``expected`` is given and its sha256 differs."""
    if expected is None:
        return
    found = sha256_of(path)
    if found != expected.lower():
        raise ValueError(
            f"{path}: sha256 {found}, expected {expected.lower()} (a corrupt download, or the "
            "archive changed on the server); delete it and download again"
        )


def check_size(path: Path, expected: int | None, *, what: str) -> None:
    """Refuse ``path`` when ``expected`` (bytes, from ``what``) is given and its size differs."""
    if expected is None:
        return
    found = path.stat().st_size
    if found != expected:
        raise ValueError(
            f"{path} holds {found} bytes but {what} says {expected}: partly downloaded or "
            "changed; delete it and download again"
        )


# ----------------------------------------------------------------------------------------------------
# Download


def unreachable(url: str, reason: object) -> OSError:
    host = urllib.parse.urlsplit(url).hostname or url
    return OSError(
        f"cannot reach {host}: {reason} (no network? download the archive by hand from {url} and "
        "give --archive FILE)"
    )


def http_error(url: str, err: urllib.error.HTTPError) -> ValueError:
    hint = "the archive is not at this address" if err.code in (404, 410) else "the server refused"
    return ValueError(
        f"{url}: HTTP {err.code} {err.reason} ({hint}; see the DAVIS page for its address, or "
        "download it by hand and give --archive FILE)"
    )


def open_url(url: str, *, start: int = 0, timeout: float = TIMEOUT) -> http.client.HTTPResponse:
    """The response to a GET of ``url`` (from byte ``start`` with a Range header when it is > 0);
    a 416 (the range starts at or past the end) is returned, not raised."""
    request = urllib.request.Request(url, headers={"User-Agent": "hmmnlab"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:
            return err  # type: ignore[return-value]
        raise http_error(url, err) from None
    except urllib.error.URLError as err:
        raise unreachable(url, err.reason) from None
    except (OSError, http.client.HTTPException) as err:  # a timeout, a reset, a bad status line
        raise unreachable(url, err) from None


def content_range(response) -> tuple[int | None, int | None]:
    """(first byte, total size) of a ``Content-Range: bytes A-B/T`` (or ``bytes */T``) header."""
    match = re.fullmatch(
        r"bytes\s+(\d+|\*)(?:-\d+)?/(\d+|\*)", response.headers.get("Content-Range", "")
    )
    if not match:
        return None, None
    first, total = match.groups()
    return (None if first == "*" else int(first)), (None if total == "*" else int(total))


def content_length(response) -> int | None:
    text = response.headers.get("Content-Length")
    return int(text) if text and text.isdigit() else None


def fetch(
    url: str,
    archive: Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = TIMEOUT,
) -> Path:
    """Download ``url`` to ``archive`` (through ``archive.part``, resuming one that exists), check
    its size against the server's and ``size``, its sha256 against ``sha256``, then rename it.
    An ``archive`` already there with the right size is not fetched again."""
    if archive.is_file():
        check_size(archive, size, what="the table of official archives")
        check_sha256(archive, sha256)
        print(f"{archive} is already downloaded; not fetched again", file=sys.stderr)
        return archive
    part = archive.with_name(archive.name + ".part")
    start = part.stat().st_size if part.is_file() else 0
    response = open_url(url, start=start, timeout=timeout)
    with contextlib.closing(response):
        total = None
        if start and response.status == 416:  # the part holds the whole file already?
            _, total = content_range(response)
            if total != start:
                response.close()
                part.unlink()
                return fetch(
                    url, archive, size=size, sha256=sha256, progress=progress, timeout=timeout
                )
        elif start and response.status == 206:
            first, total = content_range(response)
            if first != start:
                print(
                    f"{url}: the server resumed at byte {first}, not {start}; starting again",
                    file=sys.stderr,
                )
                response.close()
                part.unlink()
                return fetch(
                    url, archive, size=size, sha256=sha256, progress=progress, timeout=timeout
                )
            print(f"resuming {part} at byte {start}", file=sys.stderr)
        else:
            if start:
                print(
                    f"{url}: the server does not resume (HTTP {response.status}); starting again "
                    "from byte 0",
                    file=sys.stderr,
                )
            start = 0
            total = content_length(response)
        if size is not None and total is not None and total != size:
            raise ValueError(
                f"{url}: the server sends {total} bytes but the table of official archives says "
                f"{size}: partly downloaded or changed on the server (give --url or --archive)"
            )
        total = total if total is not None else size
        if response.status != 416:
            stream(response, part, start=start, total=total, url=url, progress=progress)
    found = part.stat().st_size
    if total is not None and found != total:
        kept = found < total
        if not kept:
            part.unlink()
        raise ValueError(
            f"{url}: received {found} bytes of {total}: partly downloaded or changed on the server"
            + (f"; {part} is kept, run the command again to resume" if kept else "")
        )
    try:
        check_sha256(part, sha256)
    except ValueError:
        part.unlink()
        raise
    os.replace(part, archive)
    print(f"downloaded {url} to {archive} ({found} bytes)", file=sys.stderr)
    return archive


def stream(
    response, part: Path, *, start: int, total: int | None, url: str, progress: bool
) -> None:
    """Append ``response``'s body to ``part`` (truncated to ``start`` bytes first), with a bar."""
    from tqdm import tqdm

    written = start
    try:
        with (
            open(part, "r+b" if start else "wb") as f,
            tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=not progress,
            ) as bar,
        ):
            f.truncate(start)
            f.seek(start)
            while block := response.read(CHUNK):
                f.write(block)
                written += len(block)
                bar.update(len(block))
    except (http.client.IncompleteRead, ConnectionError, TimeoutError) as err:
        raise OSError(
            f"{url}: the download stopped after {written} bytes"
            + (f" of {total}" if total else "")
            + f" ({err or type(err).__name__}); {part} is kept, run the command again to resume"
        ) from None
    except OSError as err:
        raise records.write_error(err, part) or err from None


# ----------------------------------------------------------------------------------------------------
# Unpack


def member_path(name: str, archive: Path) -> PurePosixPath:
    """A zip member's path, refused when it is absolute or climbs out with ``..`` (zip-slip)."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or re.match(r"^[A-Za-z]:", name) or ".." in path.parts:
        raise ValueError(
            f"{archive}: refusing member {name!r} (an absolute path or '..' would write outside "
            "--root); nothing unpacked"
        )
    return path


def planned_members(
    zf: zipfile.ZipFile, archive: Path
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """The archive's files with their paths under --root: the common top folder (``DAVIS/``)
    stripped, macOS resource folders left out. Every member is checked before anything is
    written."""
    members = [(info, member_path(info.filename, archive)) for info in zf.infolist()]
    members = [(info, p) for info, p in members if p.parts and p.parts[0] != "__MACOSX"]
    tops = {p.parts[0] for _, p in members}
    strip = (
        len(tops) == 1
        and not tops & set(records.DAVIS_FOLDERS)
        and all(len(p.parts) > 1 or info.is_dir() for info, p in members)
    )
    files = []
    for info, path in members:
        if info.is_dir():
            continue
        parts = path.parts[1:] if strip else path.parts
        if parts and parts[0] == DOWNLOADS:
            raise ValueError(
                f"{archive}: refusing member {info.filename!r} (it would write into --root's "
                f"{DOWNLOADS} folder, where the archives are kept); nothing unpacked"
            )
        if parts:
            files.append((info, PurePosixPath(*parts)))
    if not files:
        raise ValueError(f"{archive}: no files in the archive")
    return files


def same_content(path: Path, info: zipfile.ZipInfo) -> bool:
    if not path.is_file() or path.stat().st_size != info.file_size:
        return False
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            crc = zlib.crc32(block, crc)
    return crc == info.CRC


def unpack(archive: Path, root: Path, *, overwrite: bool = False, progress: bool = True) -> int:
    """Unpack the zip ``archive`` into ``root`` (its top folder stripped); returns the number of
    files written. Files already there with the same content are skipped; a different one is
    refused unless ``overwrite``."""
    from tqdm import tqdm

    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as err:
        raise ValueError(
            f"{archive}: not a zip archive ({err}); delete it and download again"
        ) from None
    with zf:
        files = planned_members(zf, archive)
        todo, conflicts = [], []
        for info, rel in files:
            target = root.joinpath(*rel.parts)
            if target.exists() and same_content(target, info):
                continue
            if target.exists() and not overwrite:
                conflicts.append(str(rel))
            todo.append((info, target))
        if conflicts:
            shown = ", ".join(conflicts[:3]) + (
                f", ... ({len(conflicts)} in all)" if len(conflicts) > 3 else ""
            )
            raise ValueError(
                f"--root {root} already holds files that differ from {archive.name}'s: {shown}; "
                "give --overwrite to replace them or choose another --root"
            )
        with tqdm(
            total=sum(i.file_size for i, _ in todo),
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc="unpacking",
            disable=not progress,
        ) as bar:
            for info, target in todo:
                try:
                    with records.atomic_path(target) as temporary, zf.open(info) as source:
                        with open(temporary, "wb") as out:
                            shutil.copyfileobj(source, out, CHUNK)
                except (zipfile.BadZipFile, zlib.error, EOFError) as err:
                    raise ValueError(
                        f"{archive}: member {info.filename} is damaged ({err}); delete the archive "
                        "and download again"
                    ) from None
                bar.update(info.file_size)
    return len(todo)


def is_unpacked(root: Path, resolution: str) -> bool:
    """Whether ``root`` holds ImageSets and the frames and annotations at ``resolution``."""
    return all(
        (root / sub).is_dir()
        for sub in ("ImageSets", f"JPEGImages/{resolution}", f"Annotations/{resolution}")
    )


def check_layout(root: Path, resolution: str, archive: Path) -> None:
    if not is_unpacked(root, resolution):
        found = (
            ", ".join(sorted(p.name for p in root.iterdir() if p.name != DOWNLOADS)) or "nothing"
        )
        raise ValueError(
            f"{archive} unpacked, but {root} has no ImageSets, JPEGImages/{resolution} and "
            f"Annotations/{resolution} (found: {found}): not a DAVIS {resolution} archive?"
        )
