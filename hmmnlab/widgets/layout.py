"""The inspector's controls and their arrangement: the affinity views, the size of a control, the
2 x 2 figures in rows that wrap on a narrow page.
"""

from __future__ import annotations

import ipywidgets as widgets

#: The affinity options: button label -> (stage of viz.affinity_maps, log colour scale).
AFFINITY_VIEWS = {
    "after kernel": ("affinity", False),
    "before kernel": ("pre_kernel", False),
    "log scale": ("affinity", True),
}

#: The figures' images: at their own size, shrunk (keeping their aspect) to the width of their
#: column and to under half the window's height, so that the four figures are in view together
IMAGE_LAYOUT = {"width": "auto", "height": "auto", "max_width": "100%",
                "max_height": "45vh", "object_fit": "contain", "margin": "0"}  # fmt: skip


def control_layout(width: str) -> dict:
    """A control's layout and style: ``width`` of its row at most, its description in full."""
    return {"layout": widgets.Layout(width=width, max_width="100%"),
            "style": {"description_width": "initial"}}  # fmt: skip


def figure_cell(title: str, child) -> widgets.VBox:
    """One of the 2 x 2 figures, under its title."""
    return widgets.VBox(
        [widgets.HTML(title), child],
        layout=widgets.Layout(width="49%", min_width="320px", align_items="flex-start"),
    )


def wrapping_row(children) -> widgets.HBox:
    """Widgets side by side, wrapping to one column when the page is narrow."""
    return widgets.HBox(
        children,
        layout=widgets.Layout(flex_flow="row wrap", width="100%", align_items="flex-start",
                              justify_content="space-between"),
    )  # fmt: skip


def inspector_app(inspector, hint: str) -> widgets.VBox:
    """The root widget of ``inspector``: its controls in rows, the progress bar and the status line,
    the 2 x 2 figures and the table of the selected cells; ``hint`` says how to choose the query."""
    return widgets.VBox(
        [
            wrapping_row([inspector.video, inspector.frame, inspector.obj]),
            wrapping_row([inspector.scale, inspector.affinity_view, inspector.y, inspector.x]),
            widgets.HBox(
                [inspector.progress, inspector.status], layout=widgets.Layout(width="100%")
            ),
            wrapping_row(
                [
                    figure_cell(
                        f"<b>Query frame</b> ({hint} to choose the r4 cell)", inspector.query_image
                    ),
                    figure_cell("<b>Top-k guidance</b>", inspector.topk_box),
                ]
            ),  # fmt: skip
            wrapping_row(
                [
                    figure_cell(
                        "<b>r4 affinity</b> (over the memory frames)", inspector.affinity_image
                    ),
                    figure_cell("<b>Gaussian kernel</b>", inspector.kernel_image),
                ]
            ),
            widgets.HTML("<b>The selected r4 cells</b> (best first)"),
            widgets.Box(
                [inspector.table],
                layout=widgets.Layout(max_height="240px", overflow="auto", width="100%"),
            ),
        ],
        layout=widgets.Layout(width="100%", max_width="100%"),
    )
