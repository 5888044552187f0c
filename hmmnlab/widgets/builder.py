""":func:`topk_inspector`, the thin builder that runs the model: the videos of a DAVIS root
(:class:`DavisVideos`, read when first shown) and :func:`model_traces` as the inspector's provider.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from hmmnlab.config import ReadConfig
from hmmnlab.widgets.inspector import TopkInspector
from hmmnlab.widgets.traces import (
    OPTIONAL_TRACE_NAMES,
    TRACE_NAMES,
    FrameTrace,
    InspectorVideo,
    TraceProvider,
)


class DavisVideos(Mapping):
    """The sequences of a DAVIS dataset as :class:`InspectorVideo`, cut to their first
    ``num_frames`` frames and read from disk when first used (name -> video)."""

    def __init__(self, dataset, *, num_frames: int = 10) -> None:
        if num_frames < 2:
            raise ValueError(f"num_frames must be >= 2, got {num_frames}")
        self.dataset, self.num_frames = dataset, num_frames
        self._loaded: dict[str, InspectorVideo] = {}

    def __getitem__(self, name: str) -> InspectorVideo:
        if name not in self._loaded:
            if name not in self.dataset.sequences:
                raise KeyError(f"unknown sequence {name!r}; {self.dataset.root} has {list(self)}")
            seq = self.dataset[name]
            count = min(self.num_frames, len(seq))
            annotated = min(count, len(seq.mask_paths))  # the annotations of the first frames
            self._loaded[name] = InspectorVideo(
                [seq[i] for i in range(count)],
                seq.first_mask(),
                truth={i: seq.mask(i) for i in range(1, annotated)},
            )
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:
        return name in self.dataset.sequences

    def __iter__(self) -> Iterator[str]:
        return iter(self.dataset.sequences)

    def __len__(self) -> int:
        return len(self.dataset.sequences)


def model_traces(
    model, videos: Mapping[str, InspectorVideo], *, read: ReadConfig | None = None,
    device: str = "cpu",
) -> TraceProvider:  # fmt: skip
    """A ``trace_of`` for :class:`TopkInspector` that runs ``model``: propagate over the frames of
    ``videos[video]`` up to ``frame``, yielding every frame's trace (:data:`TRACE_NAMES`) on the
    way."""
    from hmmnlab.inference import propagate

    read = read or ReadConfig()

    def trace_of(name: str, frame: int) -> Iterator[tuple[int, FrameTrace]]:
        video = videos[name]
        for result in propagate(
            model,
            list(video.frames[: frame + 1]),
            video.first_labels,
            read=read,
            device=device,
            trace=[*TRACE_NAMES, *OPTIONAL_TRACE_NAMES],
            trace_to_cpu=True,
        ):
            if result.index >= 1:
                labels = result.labels.cpu().numpy()  # the predicted mask, shown on the frame
                yield result.index, FrameTrace(result.trace, result.memory_frames, labels)

    return trace_of


def topk_inspector(
    root: str | Path | None = None,
    *,
    weights: str | Path | None = None,
    model=None,
    sequence: str | None = None,
    frame: int | None = None,
    num_frames: int = 10,
    read: ReadConfig | None = None,
    device: str = "cpu",
    draw: bool | None = None,
) -> TopkInspector:
    """The top-k inspector over the sequences of a DAVIS 2017 val root (default: the bundled
    samples) with ``model`` or the checkpoint ``weights`` (default: the demo weights, see
    :func:`hmmnlab.inside.lesson.demo_weights`). Only the first ``num_frames`` frames of a video are
    used; a frame's trace is computed when it is first shown. draw: see :class:`TopkInspector`
    (None: in a Jupyter kernel, draw when displayed, so the progress bar shows during the first
    trace; elsewhere, draw now)."""
    from hmmnlab.inside.lesson import demo_weights, sample_dataset
    from hmmnlab.weights import load_model

    if num_frames < 2:
        raise ValueError(f"num_frames must be >= 2, got {num_frames}")
    if model is None:
        model = load_model(demo_weights(weights), device=device)
    dataset = sample_dataset(root)
    if sequence is not None and sequence not in dataset.sequences:
        raise ValueError(f"unknown sequence {sequence!r}; {dataset.root} has {dataset.sequences}")
    videos = DavisVideos(dataset, num_frames=num_frames)
    return TopkInspector(
        videos,
        trace_of=model_traces(model, videos, read=read, device=device),
        sequence=sequence,
        frame=frame,
        read=read,
        draw=not in_jupyter_kernel() if draw is None else draw,
    )


def in_jupyter_kernel() -> bool:
    """Whether this code runs in a Jupyter (IPython) kernel, where widgets are shown."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
