"""Read a DAVIS dataset folder in its official layout.

The layout (DAVIS 2016 and 2017 share it)::

    <root>/JPEGImages/<resolution>/<sequence>/00000.jpg ...   RGB frames
    <root>/Annotations/<resolution>/<sequence>/00000.png ...  label maps
    <root>/ImageSets/2017/<split>.txt                         one sequence name per line (2017)
    <root>/ImageSets/2016/<split>.txt                         one sequence name per line (2016)
    <root>/ImageSets/480p/<split>.txt                         DAVIS 2016 release: lines
                                                              "/JPEGImages/480p/bear/00000.jpg
                                                               /Annotations/480p/bear/00000.png"

``<resolution>`` is ``480p``, ``Full-Resolution`` or any other folder name (the shared development
data uses ``240p``).

Masks: DAVIS 2016 has one object per sequence, stored as 0/255 greyscale PNGs; they are read as
0/1 (any non-zero pixel is the object). DAVIS 2017 stores indexed PNGs: 0 is background, k is object
k and 255 marks void pixels (object boundaries that are ambiguous); they are read as they are.

Frames are read lazily: a :class:`DavisSequence` holds file paths only and reads a frame when it is
indexed or iterated, so a long sequence is never held in memory as floats.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from hmmnlab.data.frames import image_size, rgb_array
from hmmnlab.data.palette import VOID_LABEL, read_label_png

YEARS = (2016, 2017)

# How many names an error message lists before it says "... and N more".
MAX_LISTED = 5


def listing(names: list[str]) -> str:
    """``a, b, c`` or ``a, b, c, ... (12 in all)`` for error messages."""
    shown = ", ".join(names[:MAX_LISTED])
    if len(names) > MAX_LISTED:
        shown += f", ... ({len(names)} in all)"
    return shown


@dataclass(frozen=True)
class DavisSequence:
    """One DAVIS sequence: the paths of its frames and annotations; pixels are read on demand.
    A :class:`~hmmnlab.data.video.Video`.

    ``seq[i]`` and ``seq.frame(i)`` read frame ``i`` as an H x W x 3 uint8 RGB array; iterating over
    the sequence (or over :meth:`frames`) reads one frame at a time. Annotations are listed
    separately in ``mask_paths`` because DAVIS test splits annotate only the first frame; in the
    train and val splits every frame has one, with the same file stem as the frame.
    """

    name: str
    year: int
    frame_paths: tuple[Path, ...]
    mask_paths: tuple[Path, ...]

    # --- names and sizes -------------------------------------------------------------------------

    @property
    def frame_names(self) -> tuple[str, ...]:
        """File stems of the frames, e.g. ``("00000", "00001", ...)``."""
        return tuple(p.stem for p in self.frame_paths)

    @property
    def mask_names(self) -> tuple[str, ...]:
        """File stems of the annotated frames."""
        return tuple(p.stem for p in self.mask_paths)

    def __len__(self) -> int:
        """Number of frames."""
        return len(self.frame_paths)

    @cached_property
    def size(self) -> tuple[int, int]:
        """(H, W) of the sequence, taken from the first frame (the first mask without frames)."""
        return image_size(self.frame_paths[0] if self.frame_paths else self.mask_paths[0])

    def _check_size(self, array: np.ndarray, path: Path) -> np.ndarray:
        if array.shape[:2] != self.size:
            raise ValueError(
                f"sequence {self.name!r}: frames have different sizes: expected H x W = "
                f"{self.size[0]} x {self.size[1]} (from "
                f"{(self.frame_paths or self.mask_paths)[0].name}), "
                f"found {array.shape[0]} x {array.shape[1]} in {path}"
            )
        return array

    # --- frames ----------------------------------------------------------------------------------

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as an H x W x 3 uint8 RGB array (read now, not cached)."""
        path = self.frame_paths[index]
        try:
            with Image.open(path) as img:
                rgb = rgb_array(img, path)
        except OSError as err:
            raise ValueError(f"cannot read frame {path}: {err}") from err
        return self._check_size(rgb, path)

    def frame_float(self, index: int) -> np.ndarray:
        """Frame ``index`` as a 3 x H x W float32 array with values in [0, 1] (RGB order)."""
        rgb = self.frame(index)  # H x W x 3 uint8
        return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / np.float32(255)

    def frames(self, *, as_float: bool = False) -> Iterator[np.ndarray]:
        """Yield the frames one by one: H x W x 3 uint8, or 3 x H x W float32 in [0, 1]."""
        read = self.frame_float if as_float else self.frame
        for index in range(len(self)):
            yield read(index)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.frame(index)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.frames()

    # --- annotations -----------------------------------------------------------------------------

    def mask(self, index: int) -> np.ndarray:
        """Annotation ``index`` (of ``mask_paths``) as an H x W uint8 label map.

        DAVIS 2016: 0 = background, 1 = the object. DAVIS 2017: 0 = background, k = object k,
        255 = void.
        """
        path = self.mask_paths[index]
        labels = read_label_png(path, binary=True if self.year == 2016 else None)
        return self._check_size(labels, path)

    def masks(self) -> np.ndarray:
        """All annotations stacked as a T x H x W uint8 array of label maps (see :meth:`mask`)."""
        if not self.mask_paths:
            raise FileNotFoundError(f"sequence {self.name!r} has no annotation PNGs")
        return np.stack([self.mask(i) for i in range(len(self.mask_paths))])

    def first_mask(self) -> np.ndarray:
        """The H x W uint8 label map of the first frame, which gives the objects to track."""
        if not self.mask_paths or (
            self.frame_paths and self.mask_paths[0].stem != self.frame_paths[0].stem
        ):
            found = self.mask_paths[0].name if self.mask_paths else "no annotation at all"
            raise FileNotFoundError(
                f"sequence {self.name!r}: expected an annotation for the first frame "
                f"{self.frame_paths[0].stem}.png, found {found}"
            )
        return self.mask(0)

    def first_labels(self) -> np.ndarray:
        """The labels of frame 0 (:meth:`first_mask`), as the :class:`~hmmnlab.data.video.Video`
        protocol names them."""
        return self.first_mask()

    def new_objects(self) -> dict[int, np.ndarray]:
        """None: in DAVIS every object is in the first frame's annotation (the protocol's
        objects entering later)."""
        return {}

    @cached_property
    def num_objects(self) -> int:
        """Number of objects K: the largest label of the first annotation, void excluded.

        This is how the official evaluation counts objects (a label missing in between still
        counts).
        """
        labels = self.first_mask()
        labels = labels[labels != VOID_LABEL]
        return int(labels.max()) if labels.size else 0


class DavisDataset:
    """A DAVIS split: the sequence names of ``ImageSets`` and a :class:`DavisSequence` for each.

    Args:
        root: the dataset folder, which holds ``JPEGImages``, ``Annotations`` and ``ImageSets``.
        year: 2016 (one object, 0/255 masks) or 2017 (several objects, indexed masks).
        split: name of the split file, e.g. ``"train"`` or ``"val"``.
        resolution: folder name under ``JPEGImages`` and ``Annotations``, e.g. ``"480p"``.
        frames: False reads the annotations only (``JPEGImages`` may be absent): what scoring
            needs, as in the official toolkit.
        sequences: check only these sequences of the split (default: all of them), so a split
            file naming a sequence that is absent does not block the others.

    ``dataset.sequences`` lists the names in split-file order and ``dataset[name]`` gives the
    sequence. Construction reads the split file and lists the sequence folders; no image is read.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        year: int | str = 2017,
        split: str = "val",
        resolution: str = "480p",
        frames: bool = True,
        sequences: list[str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.with_frames = frames
        self.year = int(year)
        self.split = split
        self.resolution = resolution
        if self.year not in YEARS:
            raise ValueError(f"year must be one of {YEARS}, found {year!r}")
        if not self.root.is_dir():
            raise FileNotFoundError(f"DAVIS root folder not found: {self.root}")
        self.frame_dir = self.root / "JPEGImages" / resolution
        self.mask_dir = self.root / "Annotations" / resolution
        check_dir, kind = (
            (self.frame_dir, "JPEGImages") if frames else (self.mask_dir, "Annotations")
        )
        if not check_dir.is_dir():
            found = sorted(p.name for p in (self.root / kind).glob("*") if p.is_dir())
            raise FileNotFoundError(
                f"expected the {'frame' if frames else 'annotation'} folder {check_dir} for "
                f"resolution {resolution!r}; resolutions found: "
                f"{listing(found) or f'none (no {kind} folder)'}"
            )
        self.split_file = self._find_split_file()
        self._names = self._read_split_file(self.split_file)
        self._sequences = {name: self._make_sequence(name) for name in self._names}
        self._check_sequences(self._names if sequences is None else sequences)

    # --- split files -----------------------------------------------------------------------------

    def _split_candidates(self) -> list[Path]:
        sets = self.root / "ImageSets"
        if self.year == 2017:
            return [sets / "2017" / f"{self.split}.txt"]
        # DAVIS 2016: a list of names, or the original release's "image mask" lines.
        candidates = [
            sets / "2016" / f"{self.split}.txt",
            sets / self.resolution / f"{self.split}.txt",
        ]
        candidates.append(sets / "480p" / f"{self.split}.txt")
        return list(dict.fromkeys(candidates))  # drop the duplicate when resolution is 480p

    def _find_split_file(self) -> Path:
        candidates = self._split_candidates()
        for path in candidates:
            if path.is_file():
                return path
        available = sorted(
            str(p.relative_to(self.root)) for p in (self.root / "ImageSets").glob("*/*.txt")
        )
        raise FileNotFoundError(
            f"unknown split {self.split!r} for DAVIS {self.year}: expected "
            f"{' or '.join(str(p.relative_to(self.root)) for p in candidates)}; "
            f"split files found: {listing(available) or 'none'}"
        )

    @staticmethod
    def _read_split_file(path: Path) -> list[str]:
        """Sequence names of a split file, in order, without duplicates.

        A line is either a name (``bear``, or ``my video``: a line without ``/`` is one name,
        spaces included) or, in the DAVIS 2016 release, an image path and a mask
        path (``/JPEGImages/480p/bear/00000.jpg /Annotations/480p/bear/00000.png``), whose folder
        name is the sequence.
        """
        names: dict[str, None] = {}  # an ordered set
        for line_number, line in enumerate(path.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if "/" not in line:  # a name, which may contain spaces ("my video")
                names[line.strip()] = None
            elif len(fields) == 2:
                names[Path(fields[0]).parent.name] = None
            else:
                raise ValueError(
                    f"{path}, line {line_number}: expected a sequence name or "
                    f"'image_path mask_path', found {line!r}"
                )
        if not names:
            raise ValueError(f"split file {path} lists no sequence")
        return list(names)

    # --- sequences -------------------------------------------------------------------------------

    def _make_sequence(self, name: str) -> DavisSequence:
        return DavisSequence(
            name=name,
            year=self.year,
            frame_paths=tuple(sorted((self.frame_dir / name).glob("*.jpg")))
            if self.with_frames
            else (),
            mask_paths=tuple(sorted((self.mask_dir / name).glob("*.png"))),
        )

    def _check_sequences(self, names: list[str]) -> None:
        selected = [self._sequences[name] for name in names if name in self._sequences]
        if self.with_frames:
            missing = [seq.name for seq in selected if not seq.frame_paths]
            expected = f"{self.frame_dir}/<sequence>/*.jpg"
        else:
            missing = [seq.name for seq in selected if not seq.mask_paths]
            expected = f"{self.mask_dir}/<sequence>/*.png"
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} sequence(s) listed in {self.split_file} have no "
                f"{'frames' if self.with_frames else 'annotations'} (expected {expected}): "
                f"{listing(missing)}"
            )

    @property
    def sequences(self) -> list[str]:
        """Sequence names, in the order of the split file."""
        return list(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __getitem__(self, name: str) -> DavisSequence:
        try:
            return self._sequences[name]
        except KeyError:
            raise KeyError(
                f"no sequence {name!r} in DAVIS {self.year} {self.split}; "
                f"sequences: {listing(self._names)}"
            ) from None

    def __iter__(self) -> Iterator[DavisSequence]:
        return (self._sequences[name] for name in self._names)

    def __repr__(self) -> str:
        return (
            f"DavisDataset(root={str(self.root)!r}, year={self.year}, split={self.split!r}, "
            f"resolution={self.resolution!r}, {len(self)} sequences)"
        )


# --------------------------------------------------------------------------------------------------
# Paths of a source checkout, and short copies of a split


def repo_path(path: str | Path) -> Path:
    """``path`` as given when it exists, else relative to the repository root (so the defaults
    ``data_samples`` works from a notebook folder of a source checkout)."""
    path = Path(path)
    repo = Path(__file__).resolve().parents[2] / path
    return path if path.exists() or path.is_absolute() or not repo.exists() else repo


def short_davis(
    davis_root: str | Path,
    out: str | Path,
    *,
    frames: int,
    start: int = 0,
    sequences: list[str] | None = None,
    year: int = 2017,
    split: str = "val",
    resolution: str = "480p",
) -> Path:
    """Copy ``frames`` frames and masks from frame ``start`` on of a split's sequences into a new
    DAVIS-layout folder ``out`` (same split name) and return it: a quick version of a benchmark.
    With ``start > 0`` the mask of frame ``start`` becomes the given first mask (every frame of a
    sequence must then be annotated, as in the samples)."""
    if frames < 3:
        raise ValueError(f"frames must be >= 3 (the first and last are not scored), got {frames}")
    dataset = DavisDataset(repo_path(davis_root), year=year, split=split, resolution=resolution)
    names = sequences or dataset.sequences
    unknown = [n for n in names if n not in dataset.sequences]
    if unknown:
        raise ValueError(f"sequences not in the {split} split of {davis_root}: {unknown[:5]}")
    out = Path(out)
    for name in names:
        sequence = dataset[name]
        if start and sequence.mask_names != sequence.frame_names:
            raise ValueError(
                f"start={start} needs a mask for every frame, but {name} annotates "
                f"{len(sequence.mask_names)} of {len(sequence)} frames"
            )
        if start + 3 > len(sequence):
            raise ValueError(f"{name} has {len(sequence)} frames: too few to start at {start}")
        for kind, paths in (
            ("JPEGImages", sequence.frame_paths),
            ("Annotations", sequence.mask_paths),
        ):
            folder = out / kind / resolution / name
            folder.mkdir(parents=True, exist_ok=True)
            for path in paths[start : start + frames]:
                if not (folder / path.name).is_file():
                    shutil.copyfile(path, folder / path.name)
    split_file = out / "ImageSets" / str(year) / f"{split}.txt"
    split_file.parent.mkdir(parents=True, exist_ok=True)
    split_file.write_text("".join(f"{n}\n" for n in names))
    return out
