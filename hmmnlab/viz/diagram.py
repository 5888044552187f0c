"""HMMN's hierarchical memory read as a diagram of boxes and arrows."""

from __future__ import annotations

from matplotlib.figure import Figure

from hmmnlab.config import ReadConfig


def read_diagram(read: ReadConfig | None = None) -> Figure:
    """HMMN's hierarchical memory read as boxes and arrows: the r4 (stride 16) kernel-guided memory
    matching, whose best matches guide the top-k matching at r3 (stride 8) and r2 (stride 4), then
    the decoder. read: the read whose top-k sizes are written on the arrows (None: "k")."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    k3, k2 = ("k", "k") if read is None else (read.k_r3, read.k_r2)
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 3.6)
    ax.axis("off")
    boxes = {  # name: (centre x, centre y, text, colour)
        "query": (0.9, 2.2, "query frame t\nencoder: keys at\nstrides 16, 8, 4", "#eeeeee"),
        "r4": (3.0, 2.2, "r4 (stride 16)\nkernel-guided\nmemory matching\nsoftmax(S) G", "#cfe2f3"),
        "r3": (5.2, 2.2, f"r3 (stride 8)\ntop-k guided\nmatching (k={k3})", "#d9ead3"),
        "r2": (7.2, 2.2, f"r2 (stride 4)\ntop-k guided\nmatching (k={k2})", "#d9ead3"),
        "decoder": (9.2, 2.2, "decoder\nr4, r3, r2\nread-outs\n-> mask of t", "#fce5cd"),
        "memory": (5.1, 0.45, "memory: keys and values of past frames at r4, r3, r2", "#fff2cc"),
    }
    size = {"memory": (6.2, 0.5)}
    for name, (x, y, text, colour) in boxes.items():
        w, h = size.get(name, (1.55, 1.25))
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05",
                                    facecolor=colour, edgecolor="#555555"))  # fmt: skip
        ax.text(x, y, text, ha="center", va="center", fontsize=9.5)

    def arrow(start, end, label="", *, bend=0.0, dy=0.12, style="-", color="#333333"):
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14,
                                     connectionstyle=f"arc3,rad={bend}", color=color,
                                     linestyle=style))  # fmt: skip
        if label:
            mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
            ax.text(mx, my + dy, label, ha="center", va="bottom", fontsize=8.5, color="#1c4587")

    arrow((1.72, 2.2), (2.18, 2.2))
    arrow((3.82, 2.45), (4.38, 2.45), "top-k", dy=0.05)
    arrow((3.2, 2.88), (7.0, 2.88), f"the same r4 matches guide r2 (k={k2})", bend=-0.12, dy=0.25)
    for x in (3.0, 5.2, 7.2):  # each scale matches the memory's keys at its own stride
        arrow((x, 0.72), (x, 1.52))
    for x in (3.6, 5.8, 7.8):  # each scale's read-out goes to the decoder
        arrow((x, 1.52), (9.0, 1.52), bend=0.25 if x < 7 else 0.35, style="--", color="#b45f06")
    ax.text(8.6, 1.0, "read-outs", ha="center", va="top", fontsize=8.5, color="#b45f06")
    ax.set_title("One memory read of HMMN, coarse to fine", fontsize=11)
    return fig
