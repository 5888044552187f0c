"""Animations: a JavaScript player for a notebook or an HTML page that plays without a kernel or a
network, and animated WebP / GIF bytes (for the HTML report).
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from hmmnlab.viz.overlays import object_legend, palette_ids_in


def animate(
    images: list[np.ndarray],
    *,
    fps: float = 6.0,
    width: float = 6.0,
    counter: bool = True,
    legend: Mapping[int, str] | list[int] | str | None = "auto",
    first: int = 0,
) -> str:
    """A JavaScript player (play, pause, frame slider) for H x W x 3 images, as an HTML string:
    ``IPython.display.HTML(animate(images))`` in a notebook; it plays without a running kernel.

    counter: write "frame t / T" above the picture (t counted from ``first``). legend: object ids
    (or {id: name}) whose DAVIS palette colours get a legend under the picture; "auto" finds the
    colours :func:`overlay` draws object boundaries in (at least 20 pixels of the exact palette
    colour in some image), None draws no legend."""
    from matplotlib.animation import FuncAnimation

    if not images:
        raise ValueError("animate needs at least one image")
    if isinstance(legend, str):
        if legend != "auto":
            raise ValueError(f"legend must be 'auto', None, ids or {{id: name}}, got {legend!r}")
        legend = palette_ids_in(images)
    names = (
        dict(legend) if isinstance(legend, Mapping) else {i: f"object {i}" for i in legend or []}
    )
    extra = (0.35 if counter else 0) + (0.4 if names else 0)
    height = width * images[0].shape[0] / images[0].shape[1]
    fig = Figure(figsize=(width, height + extra))
    bottom = (0.4 if names else 0) / (height + extra)
    ax = fig.add_axes((0, bottom, 1, height / (height + extra)))
    ax.axis("off")
    shown = ax.imshow(images[0])
    label = fig.text(0.5, 1 - 0.05 / (height + extra), "", ha="center", va="top", fontsize=12)
    if names:
        object_legend(fig, list(names), names=names)

    def draw(t):
        shown.set_data(images[t])
        if counter:
            label.set_text(f"frame {first + t} / {first + len(images) - 1}")
        return (shown, label)

    movie = FuncAnimation(fig, draw, frames=len(images), interval=1000 / fps, blit=True)
    return offline_player(movie.to_jshtml(default_mode="loop"))


# matplotlib's player draws its buttons with Font Awesome icons fetched from a CDN (which fails
# offline and in classrooms without internet); plain characters instead.
PLAYER_ICONS = {
    "fa fa-minus": "&#8722;",
    "fa fa-fast-backward": "&#9198;",
    "fa fa-step-backward": "&#9664;|",
    "fa fa-play fa-flip-horizontal": "&#9664;",
    "fa fa-pause": "&#9208;",
    "fa fa-play": "&#9654;",
    "fa fa-step-forward": "|&#9654;",
    "fa fa-fast-forward": "&#9197;",
    "fa fa-plus": "+",
}


def offline_player(page: str) -> str:
    """matplotlib's JavaScript player without any request to the network (see PLAYER_ICONS)."""
    page = re.sub(r"<link[^>]*font-awesome[^>]*>", "", page)
    for icon, text in PLAYER_ICONS.items():
        page = page.replace(f'<i class="{icon}"></i>', text)
    return page


def animation_format() -> str:
    """ "webp" (lossy animated WebP: the noisy textures of the samples take a tenth of a GIF's
    bytes; every current browser shows it) when Pillow can write it, else "gif"."""
    from PIL import features

    return "webp" if features.check("webp") else "gif"


def animation_bytes(images: list[np.ndarray], *, fps: float = 4.0, format: str = "webp") -> bytes:
    """A looping animation of H x W x 3 uint8 images, as the bytes of an animated ``format``
    file: "webp" (lossy, quality 70) or "gif" (128 colours)."""
    from PIL import Image

    if not images:
        raise ValueError("animation_bytes needs at least one image")
    if format not in ("webp", "gif"):
        raise ValueError(f"format must be 'webp' or 'gif', got {format!r}")
    frames = [Image.fromarray(np.asarray(image, np.uint8)) for image in images]
    options = {"quality": 70, "method": 4} if format == "webp" else {"optimize": True}
    if format == "gif":
        frames = [frame.quantize(128) for frame in frames]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=format.upper(), save_all=True, append_images=frames[1:],
                   duration=round(1000 / fps), loop=0, **options)  # fmt: skip
    return buffer.getvalue()
