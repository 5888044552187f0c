"""The decoder's output of a trace, and its feature maps (keys, values, read-outs) as RGB images of
their first three principal components.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from hmmnlab import ops
from hmmnlab.viz.grid import SCALES, _figure, _show_frame, check_object, grid_extent, require
from hmmnlab.viz.overlays import overlay


def decoder_output(cache: Mapping[str, Tensor], frame: np.ndarray, *, obj: int = 0) -> Figure:
    """The decoder's foreground probability of object ``obj``, its probability after soft
    aggregation with the other objects, and the frame's labels (argmax) over the frame."""
    require(cache, "decoder.logits", "output.probs")
    check_object(cache, "decoder.logits", obj)
    image = np.asarray(frame)
    padding = ops.padding_for(*image.shape[:2])
    decoder = torch.softmax(cache["decoder.logits"][obj].float(), dim=0)[1]  # Hp x Wp
    decoder = ops.unpad(decoder, padding).numpy()
    probs = ops.unpad(cache["output.probs"].float(), padding)  # (B+1) x H x W
    if probs.shape[-2:] != image.shape[:2]:
        raise ValueError(
            f"the trace's output is {tuple(probs.shape[-2:])} once unpadded but the frame is "
            f"{image.shape[:2]}: is it the traced frame?"
        )
    fig, axes = _figure(1, 3, title=f"decoder output, object {obj + 1}")
    axes = axes[0]
    for ax, data, title in (
        (axes[0], decoder, "decoder: P(object | pixel)"),
        (axes[1], probs[obj + 1].numpy(), "after soft aggregation"),
    ):
        ax.imshow(data, cmap="magma", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    labels = probs.argmax(dim=0).numpy()
    if image.dtype != np.uint8:  # float frames in [0, 1]
        image = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    _show_frame(axes[2], overlay(image, labels), "labels (argmax)")
    return fig


def pca_rgb(maps: list[np.ndarray]) -> list[np.ndarray]:
    """Project C x h x w feature maps (same C) on their 3 joint principal components, scaled to
    [0, 1] per component: a list of h x w x 3 images. Each map is centred on its own mean first, so
    a constant offset between maps (e.g. memory vs query keys) does not take the first component."""
    flat = np.concatenate(
        [(m.reshape(m.shape[0], -1).T - m.reshape(m.shape[0], -1).mean(1)) for m in maps]
    )  # N x C
    _, vectors = np.linalg.eigh(flat.T @ flat)  # C x C covariance: ascending eigenvalues
    comps = vectors[:, ::-1][:, :3].T  # 3 x C principal directions
    if comps.shape[0] < 3:
        comps = np.concatenate([comps, np.zeros((3 - comps.shape[0], flat.shape[1]))])
    projected = flat @ comps.T  # N x 3
    low, high = projected.min(0), projected.max(0)
    projected = (projected - low) / np.where(high > low, high - low, 1)
    out, start = [], 0
    for m in maps:
        n = m.shape[1] * m.shape[2]
        out.append(projected[start : start + n].reshape(m.shape[1], m.shape[2], 3))
        start += n
    return out


def features_pca(
    cache: Mapping[str, Tensor],
    names,
    *,
    obj: int = 0,
    images: list[np.ndarray] | None = None,
) -> Figure:
    """Feature maps (hook names, each B x C x h x w or 1 x C x h x w) as RGB images of their first
    3 principal components; maps with the same number of channels share one PCA, so equal colours
    mean similar features. ``images``: one frame per name, under its map (laid over the padded
    grid)."""
    names = list(names)
    require(cache, *names)
    if images is not None and len(images) != len(names):
        raise ValueError(f"images must give one frame per name ({len(names)}), got {len(images)}")
    maps = []
    for name in names:
        tensor = cache[name]
        if tensor.ndim != 4:
            raise ValueError(f"{name} is {tuple(tensor.shape)}, not a B x C x h x w feature map")
        if tensor.shape[0] > 1:
            check_object(cache, name, obj)
        maps.append(tensor[obj if tensor.shape[0] > 1 else 0].float().numpy())
    rgb: list = [None] * len(maps)
    for channels in {m.shape[0] for m in maps}:
        group = [i for i, m in enumerate(maps) if m.shape[0] == channels]
        for i, picture in zip(group, pca_rgb([maps[i] for i in group]), strict=True):
            rgb[i] = picture
    title = f"first 3 principal components as RGB, object {obj + 1}"
    fig, axes = _figure(1, len(names), title=title)
    for ax, name, picture, i in zip(axes[0], names, rgb, range(len(names)), strict=True):
        if images is not None:
            image = np.asarray(images[i])
            _show_frame(ax, image, name)
            ax.imshow(
                picture, extent=grid_extent(image.shape[:2]), interpolation="nearest", alpha=0.8
            )
        else:
            ax.imshow(picture, interpolation="nearest")
            ax.set_title(name, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    return fig


def keys_pca(cache, *, scale: str = "r4", obj: int = 0, images=None) -> Figure:
    """Memory key (frame t-1) and query key at ``scale`` in one PCA (see :func:`features_pca`);
    ``images``: (frame t-1, query frame)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    n = scale[1]
    return features_pca(
        cache, [f"memory_features.k{n}", f"query_features.k{n}"], obj=obj, images=images
    )


def values_pca(cache, *, obj: int = 0, images=None) -> Figure:
    """Memory value (frame t-1) and query value at r4 (see :func:`features_pca`)."""
    return features_pca(cache, ["memory_features.v4", "query_features.v4"], obj=obj, images=images)


def readouts_pca(cache, *, obj: int = 0) -> Figure:
    """The memory read-outs at r4, r3 and r2 as PCA RGB images (one PCA per scale)."""
    return features_pca(cache, ["r4.readout", "r3.readout", "r2.readout"], obj=obj)
