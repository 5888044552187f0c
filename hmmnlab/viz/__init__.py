"""Pictures: overlays of label maps on frames, figures from traces, figures of score tables, and
an offline animation player. Pure functions: arrays, tensors and DataFrames in, matplotlib Figures
(or HTML) out; no model runs, no files read.

The package, by job (every name importable from ``hmmnlab.viz``, as before the split):
:mod:`~hmmnlab.viz.overlays` (label maps on frames, legends, the J&F plot),
:mod:`~hmmnlab.viz.grid` (what the figures of a trace share: its checks, the r4 grid and its cells),
:mod:`~hmmnlab.viz.affinity` (the r4 affinity, kernels, flow), :mod:`~hmmnlab.viz.topk` (the top-k
guidance), :mod:`~hmmnlab.viz.features` (decoder output, PCA of feature maps),
:mod:`~hmmnlab.viz.canvas` (figures to pixels and PNG bytes), :mod:`~hmmnlab.viz.players`
(animations) and :mod:`~hmmnlab.viz.diagram` (the hierarchical read as a diagram).
"""

from hmmnlab import ops as ops  # re-exported: ``viz.ops`` was importable (tests/test_viz.py)
from hmmnlab.viz.affinity import (
    AffinityFigure,
    affinity_maps,
    affinity_rows,
    flow_arrows,
    kernel_sigmas,
)
from hmmnlab.viz.canvas import (
    figure_png,
    png_bytes,
    render,
)
from hmmnlab.viz.diagram import (
    read_diagram,
)
from hmmnlab.viz.features import (
    decoder_output,
    features_pca,
    keys_pca,
    pca_rgb,
    readouts_pca,
    values_pca,
)
from hmmnlab.viz.grid import (
    R4_STRIDE,
    SCALES,
    STAGES,
    cell_box,
    check_object,
    check_query,
    frame_image,
    grid_extent,
    pixel_to_cell,
    query_cell_on_object,
    r4_grid,
    require,
)
from hmmnlab.viz.overlays import (
    MIN_FIGURE_WIDTH,
    compare_plot,
    labelled_row,
    object_legend,
    overlay,
    overlay_panels,
    palette_ids_in,
)
from hmmnlab.viz.players import (
    PLAYER_ICONS,
    animate,
    animation_bytes,
    animation_format,
    offline_player,
)
from hmmnlab.viz.topk import (
    TopkFigure,
    topk_on_memory,
    topk_table,
)

__all__ = [
    "AffinityFigure",
    "MIN_FIGURE_WIDTH",
    "PLAYER_ICONS",
    "R4_STRIDE",
    "SCALES",
    "STAGES",
    "TopkFigure",
    "affinity_maps",
    "affinity_rows",
    "animate",
    "animation_bytes",
    "animation_format",
    "cell_box",
    "check_object",
    "check_query",
    "compare_plot",
    "decoder_output",
    "features_pca",
    "figure_png",
    "flow_arrows",
    "frame_image",
    "grid_extent",
    "kernel_sigmas",
    "keys_pca",
    "labelled_row",
    "object_legend",
    "offline_player",
    "overlay",
    "overlay_panels",
    "palette_ids_in",
    "pca_rgb",
    "pixel_to_cell",
    "png_bytes",
    "query_cell_on_object",
    "r4_grid",
    "read_diagram",
    "readouts_pca",
    "render",
    "require",
    "topk_on_memory",
    "topk_table",
    "values_pca",
]
