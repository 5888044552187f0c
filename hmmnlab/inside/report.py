"""``hmmnlab demo``: a headless tour of the toolkit on the bundled samples, as one HTML report.

Sections (the notebooks' essence): a sample video segmented (overlays); one memory read explained
from a trace (where a query cell looks, the Gaussian kernels, the top-k guidance); a small read
ablation (the table, its CSV and a plot); and the *twins* case, two identical objects told apart
only by their motion, read by ``stm`` (no kernel) and ``hmmn`` (temporal kernel).

:func:`demo` does it in three steps, one job each: :func:`~hmmnlab.inside.demo_runs.prepare_demo`
loads the model and the data; the *runs* of :mod:`hmmnlab.inside.demo_runs` (``segment_video``,
``trace_read``, ``run_ablation``, ``compare_twins``) segment, trace and score, writing their files
under ``out``; the *sections* here
(:func:`intro_section` ... :func:`twins_section`) turn what the runs measured into text, figures and
tables of a :class:`Report`, which assembles the HTML. The report is self-contained (figures are
embedded as base64 PNG, tables as HTML).

The helpers that read a run's files (``frame_scores``, ``worst_frames``, ``frames_against_truth``,
``predicted_labels``, ``filmstrip``, ``compare_reads``) are in :mod:`hmmnlab.inside.run_files`, which
the notebooks call too; the pure figures (``overlay_panels``, ``compare_plot``,
``animate``, ``query_cell_on_object``) are in :mod:`hmmnlab.viz`.
"""

from __future__ import annotations

import base64
import html
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hmmnlab import ablation, viz
from hmmnlab.inside.demo_runs import (
    TWINS_SEQUENCE,
    DemoSetup,
    Segmented,
    TracedRead,
    TwinsComparison,
    compare_twins,
    prepare_demo,
    run_ablation,
    segment_video,
    trace_read,
)

#: Below this J&F (mean over the twins' frames) a model is said to lose the twins.
FAIL_JF = 0.7
READ_DIAGRAM_ALT = "diagram: the hierarchical memory read r4, r3, r2, then the decoder"
TITLE = "hmmnlab demo: HMMN video object segmentation, explained and ablated"

# ----------------------------------------------------------------------------------------------------
# The HTML report


def figure_tag(fig, *, dpi: int = 80, alt: str = "figure") -> str:
    """An <img> with the figure embedded as a base64 PNG."""
    data = base64.b64encode(viz.figure_png(fig, dpi=dpi)).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; } h2 { margin-top: 2em; border-bottom: 1px solid #eee; }
img { max-width: 100%; display: block; margin: 0.8em 0; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.8em 0; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; }
.note { color: #555; font-size: 0.9em; } code { background: #f4f4f4; padding: 0 3px; }
"""


class Report:
    """An HTML document built section by section."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def text(self, text: str, *, note: bool = False) -> None:
        cls = ' class="note"' if note else ""
        self.parts.append(f"<p{cls}>{text}</p>")  # trusted: written by this module

    def figure(self, fig, *, alt: str = "figure") -> None:
        self.parts.append(figure_tag(fig, alt=alt))

    def animation(self, images: list[np.ndarray], *, alt: str, fps: float = 4.0) -> None:
        """H x W x 3 images as an animated WebP (or GIF, see :func:`hmmnlab.viz.animation_format`),
        embedded as base64."""
        kind = viz.animation_format()
        data = base64.b64encode(viz.animation_bytes(images, fps=fps, format=kind)).decode("ascii")
        self.parts.append(f'<img alt="{html.escape(alt)}" src="data:image/{kind};base64,{data}">')

    def table(self, df_or_styler) -> None:
        if isinstance(df_or_styler, pd.DataFrame):
            self.parts.append(df_or_styler.to_html(index=False, float_format="%.3f", border=0))
        else:
            self.parts.append(df_or_styler.to_html())

    def html(self) -> str:
        body = "\n".join(self.parts)
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head>\n<body>"
            f"<h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        """Write the document to ``path`` and return it."""
        path = Path(path)
        path.write_text(self.html())
        return path


def intro_section(report: Report, setup: DemoSetup) -> None:
    """What HMMN does (a diagram of its hierarchical read), then the weights, data and device."""
    read = setup.reads["hmmn"]
    report.text(
        "HMMN (hierarchical memory matching network) segments objects through a video from the mask "
        "of its first frame. Each new frame <i>t</i> reads a memory of past frames (their keys and "
        "values, with the masks found for them), coarse to fine. At <b>r4</b> (stride 16) every "
        "query position is matched against every memory position, and a Gaussian kernel centred "
        "where each memory position is tracked to in frame <i>t</i> keeps the matches near it "
        "(kernel-guided memory matching). The r4 matches then guide the finer reads: at <b>r3</b> "
        f"(stride 8) and <b>r2</b> (stride 4) a query cell only looks at the children of its top-k "
        f"r4 memory cells (k = {read.k_r3} and {read.k_r2} here: top-k guided matching), which "
        "keeps the fine reads cheap. The <b>decoder</b> turns the three read-outs into the mask of "
        "frame <i>t</i>, which goes into memory for the next frames."
    )
    report.figure(viz.read_diagram(read), alt=READ_DIAGRAM_ALT)
    report.text(
        f"Weights: <code>{html.escape(setup.weights_name)}"
        f"</code>; data: <code>{html.escape(str(setup.root))}</code>"
        + (f" (first {setup.frames} frames)" if setup.frames else "")
        + f"; device: {setup.device}; precision: {setup.dtype}. Every number below was measured "
        "by this run.",
        note=True,
    )


def segment_section(report: Report, segmented: Segmented) -> None:
    """1. A filmstrip of overlays and the sequence's scores."""
    report.heading(f"1. Segmenting a video: {segmented.sequence.name}")
    report.text(
        "Frame 0's mask is given; every later frame is segmented by reading the memory of past "
        "frames (the HMMN read). Overlays of evenly spaced frames (colours: objects; frame 0 is the "
        "annotation). Overlay frames and an MP4 are in "
        f"<code>{html.escape(str(segmented.folder / 'overlays'))}</code>."
    )
    panels = segmented.panels
    report.figure(viz.overlay_panels(panels, columns=min(len(panels), 3)))
    if segmented.movie:
        report.text("Every frame, as an animation:")
        report.animation(segmented.movie, alt=f"{segmented.sequence.name} segmented")
    report.table(segmented.scores)


def read_section(report: Report, traced: TracedRead) -> None:
    """2. Where one query cell looks in memory: affinity, kernel, sigmas and top-k guidance."""
    t, obj, cache, memory = traced.frame, traced.obj, traced.cache, traced.memory_frames
    report.heading(f"2. One memory read, explained (frame {t}, object {traced.object_id})")
    report.text(
        f"For one r4 cell of frame {t} (cyan box, on object {traced.object_id}), where does "
        "the read look in memory? First the raw affinity <i>S</i> (every memory position, "
        "no kernel: what STM reads), then the Gaussian kernel <i>G</i> centred where each memory "
        "position is tracked to, and the affinity after the kernel, softmax(<i>S</i>) <i>G</i>, "
        "whose weights average the memory values."
    )
    for stage in ("logits", "kernel", "affinity"):
        report.figure(viz.affinity_maps(cache, traced.sequence, memory, traced.query,
                                        obj=obj, stage=stage, query_frame=t))  # fmt: skip
    report.text("Older memory frames get wider kernels (their positions are less certain):")
    report.figure(viz.kernel_sigmas(cache, memory))
    report.text(
        "The r4 affinity then guides the finer reads: for the same query cell, the r3 read "
        "attends only to the children of the top-k r4 memory cells (frame 0 and frame t-1)."
    )
    report.figure(viz.topk_on_memory(cache, traced.sequence, memory, traced.query, obj=obj,
                                     scale="r3", query_frame=t, read=traced.read))  # fmt: skip


def ablation_section(report: Report, table: pd.DataFrame, setup: DemoSetup) -> None:
    """3. The ablation table (styled) and its two plots."""
    sequences = setup.ablation_sequences or setup.dataset.sequences
    report.heading("3. Read ablation: the same weights, different memory reads")
    report.text(
        f"Sequences: {', '.join(sequences)}. Columns: the read parameters "
        "that vary, J&amp;F, J and F (DAVIS means over objects), seconds per frame and peak memory "
        f"on {setup.device} (timings depend on what else the machine is doing). Best J&amp;F in green; the full table with every parameter is "
        f"<code>{html.escape(str(setup.out / 'ablation.csv'))}</code>."
    )
    report.table(ablation.styled(table))
    report.figure(ablation.plot(table))
    report.figure(ablation.plot(table, kind="scatter"))


def twins_section(report: Report, twins: TwinsComparison) -> None:
    """4. Both comparisons on the twins: numbers, per-frame plots and the most different frame."""
    report.heading("4. The twins case: stm against hmmn, compared two ways")
    report.text(
        "Two identical objects cross. A non-local read (stm) matches appearance anywhere in the "
        "frame, so it can confuse the twins; the kernel read (hmmn) only trusts matches near where "
        "each memory position is tracked to. There are two fair questions: "
        "<b>(a) same weights, read swapped at inference</b> (the ablation "
        "above: a model trained with one read, run with another, is out of its training "
        "conditions), and <b>(b) trained with each read</b>: the demo model (trained and run with "
        "hmmn) against demo-stm (trained and run with stm, otherwise trained identically)."
    )
    lines = [f"(a) same weights, read swapped: {_scores_text(twins.swapped)}"]
    if twins.trained is not None:
        lines.append(f"(b) trained with each read: {_scores_text(twins.trained)}")
    report.text(f"Measured on {TWINS_SEQUENCE}, J&amp;F: " + "; ".join(lines) + ".")
    report.text(comparisons_text(twins))
    report.figure(viz.compare_plot(
        twins.swapped, title=f"(a) {TWINS_SEQUENCE}: same weights, J&F per frame"
    ))  # fmt: skip
    if twins.trained is not None:
        report.figure(
            viz.compare_plot(twins.trained, title=f"(b) {TWINS_SEQUENCE}: trained with each read")
        )
    report.text(f"The frame where the last comparison differs most: frame {twins.where}.")
    report.figure(viz.overlay_panels(twins.panels, columns=3))
    if twins.movie:
        report.text("Every frame: the ground truth and each prediction of the last comparison.")
        report.animation(twins.movie, alt=f"{TWINS_SEQUENCE} segmented")
    report.text(failure_text(twins))


def favoured(per_frame: pd.DataFrame) -> str | None:
    """The column of a per-frame J&F table with the largest mean, compared at the 3 decimals the
    report prints (None: a tie)."""
    means = per_frame.mean().round(3)
    best = means[means == means.max()]
    return str(best.index[0]) if len(best) == 1 else None


def read_of(label: str) -> str:
    """The read a comparison's column names: 'hmmn' from 'hmmn read' or 'demo (hmmn)'."""
    found = re.fullmatch(r"(\S+) read|.*\((\S+)\)", label)
    if found is None:
        raise ValueError(f"expected a column like 'hmmn read' or 'demo (hmmn)', got {label!r}")
    return found.group(1) or found.group(2)


def _against(per_frame: pd.DataFrame) -> str:
    """'demo (hmmn) 0.979 against demo-stm (stm) 0.333', the largest mean first."""
    means = per_frame.mean().sort_values(ascending=False, kind="stable")
    return " against ".join(f"{html.escape(str(k))} {v:.3f}" for k, v in means.items())


def comparisons_text(twins: TwinsComparison) -> str:
    """Whether the two comparisons favour the same read, and which, from their mean J&F."""
    found = [("(a)", twins.swapped)] + ([] if twins.trained is None else [("(b)", twins.trained)])
    verdicts = []
    for name, table in found:
        best = favoured(table)
        verdict = "is a tie" if best is None else f"favours {read_of(best)}"
        verdicts.append((name, best and read_of(best), f"{name} {verdict} ({_against(table)})"))
    if len(verdicts) == 1:
        return f"Only comparison (a) was run (no stm-trained weights given): {verdicts[0][2]}."
    reads = {read for _, read, _ in verdicts}
    if len(reads) == 1 and None not in reads:
        return (f"The two comparisons agree: both favour the {reads.pop()} read; "
                + "; ".join(text for _, _, text in verdicts) + ".")  # fmt: skip
    return "The two comparisons disagree: " + "; ".join(text for _, _, text in verdicts) + "."


def _frames_text(frames) -> str:
    """'10-16' for consecutive frames, else '3, 5, 9'."""
    frames = list(frames)
    if len(frames) > 1 and frames == list(range(frames[0], frames[-1] + 1)):
        return f"{frames[0]}-{frames[-1]}"
    return ", ".join(str(t) for t in frames)


def failure_text(twins: TwinsComparison, *, threshold: float = FAIL_JF) -> str:
    """ "Where the models fail": which of the last comparison's models lose the twins (mean J&F
    below ``threshold``), from which frame, and where the twins touch in the ground truth."""
    table = twins.swapped if twins.trained is None else twins.trained
    kind, kinds = (
        ("read", "reads of the same weights") if twins.trained is None else ("model", "models")
    )
    means = table.mean().round(3)
    failing = [str(c) for c in table.columns if means[c] < threshold]
    keeping = [str(c) for c in table.columns if means[c] >= threshold]

    def scores(columns):
        return ", ".join(f"{html.escape(c)} {means[c]:.3f}" for c in columns)

    if not keeping:
        both = "Both" if len(failing) == 2 else "All"
        verdict = (f"{both} {kinds} lose the twins: J&amp;F {scores(failing)}, "
                   f"{both.lower()} below {threshold:.2f}.")  # fmt: skip
    elif failing:
        verdict = (f"{scores(failing)}: below {threshold:.2f}, lost the twins; "
                   f"{scores(keeping)}: kept them.")  # fmt: skip
    else:
        verdict = (
            f"No {kind} falls below J&amp;F {threshold:.2f} on the twins here ({scores(keeping)})."
        )
    drops = []
    for c in table.columns:
        below = table.index[table[c] < threshold]
        drops.append(f"{html.escape(str(c))} first at frame {below[0]}" if len(below) else
                     f"{html.escape(str(c))} never")  # fmt: skip
    parts = [f"<b>Where the models fail.</b> {verdict}",
             f"Per frame, J&amp;F below {threshold:.2f}: " + "; ".join(drops) + "."]  # fmt: skip
    scored = _frames_text(range(int(table.index.min()), int(table.index.max()) + 1))
    if twins.crossing:
        parts.append(
            f"In the ground truth the twins touch at frames {_frames_text(twins.crossing)}."
        )
    else:
        parts.append(f"In the frames run (scored: {scored}) the twins do not touch yet: this run "
                     "does not reach their crossing.")  # fmt: skip
    if not keeping and twins.crossing:
        parts.append(
            "Where two identical objects cross, their appearance cannot tell them apart, and the "
            "full crossing cannot be resolved by any memory read without a motion model: the "
            "kernel only says where each object was, and while they overlap both are there."
        )
    return " ".join(parts)


def demo(
    out: str | Path = "out/demo",
    *,
    weights=None,
    davis_root: str | Path = "data_samples",
    device: str = "cpu",
    full: bool = False,
    frames: int | None = None,
    grid: ablation.Grid | None = None,
    stm_weights="demo-stm",
    progress: bool = True,
    dtype: str | None = None,
) -> Path:
    """Build the demo report into ``out`` (``report.html``, ``ablation.csv`` and the run folders)
    and return the report's path. weights: a checkpoint path or a model; None: the demo weights
    (``$HMMNLAB_DEMO_WEIGHTS`` if set, else the registered ``demo`` weights).

    full: the full read grid (:func:`hmmnlab.ablation.default_grid`) on every sequence of the split
    instead of the quick grid on the twins (slow on a CPU). frames: cut the videos to their first
    ``frames`` frames (quick runs). grid: a read grid of your own (must include ``stm`` and
    ``hmmn`` for the twins case). stm_weights: the model trained with the stm read, compared
    in the twins case with ``weights`` under its own (hmmn) read (None: that comparison is left
    out). dtype: the precision of every run, ``"float32"`` or ``"bfloat16"`` (None: the process-wide
    default, :mod:`hmmnlab.precision`).
    """
    started = time.perf_counter()
    setup = prepare_demo(out, weights=weights, davis_root=davis_root, device=device, full=full,
                         frames=frames, grid=grid, dtype=dtype)  # fmt: skip
    segmented = segment_video(setup, progress=progress)
    traced = trace_read(setup, segmented.sequence)
    table = run_ablation(setup, progress=progress)
    twins = compare_twins(setup, stm_weights=stm_weights, progress=progress)

    report = Report(TITLE)
    intro_section(report, setup)
    segment_section(report, segmented)
    read_section(report, traced)
    ablation_section(report, table, setup)
    twins_section(report, twins)
    report.text(f"Built in {time.perf_counter() - started:.0f} s.", note=True)
    return report.write(setup.out / "report.html")


def _scores_text(per_frame: pd.DataFrame) -> str:
    """'a 0.712, b 0.431 (better: a)' from a per-frame J&F table (mean over its frames)."""
    means = per_frame.mean()
    parts = ", ".join(f"<b>{html.escape(str(k))} {v:.3f}</b>" for k, v in means.items())
    best = favoured(per_frame) or "neither"
    return f"{parts} (better: {html.escape(str(best))})"
