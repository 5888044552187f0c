"""Draw the README's opening picture from a real run: ``python docs/make_figures.py``.

One memory read of the bundled ``demo`` model on frame 8 of the ``twins`` sample (two identical
discs), for a query cell at the centre of the first disc (placed by the true mask):

1. the r4 affinity after the kernel (``viz.affinity_maps``, stage ``affinity``) over the memory
   frames: where the query reads;
2. the r3 top-k cells it is guided to (``viz.topk_on_memory``);
3. the decoder's output (``viz.decoder_output``).

The three figures are stacked into ``docs/images/hero.png``. Everything comes from
:mod:`hmmnlab.viz` and :mod:`hmmnlab.inside.lesson`, as in notebook 01.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from PIL import Image  # noqa: E402

from hmmnlab import viz
from hmmnlab.inside import lesson  # noqa: E402
from hmmnlab.inside.trace import run_with_cache  # noqa: E402

HERE = Path(__file__).resolve().parent
FRAME = 8  # the twins are close here
OBJ = 0


def stacked(figures, width: int = 1100) -> Image.Image:
    """The figures, each scaled to ``width`` pixels, one under the other on white."""
    images = []
    for fig in figures:
        image = Image.open(io.BytesIO(viz.figure_png(fig, dpi=100))).convert("RGB")
        images.append(image.resize((width, round(image.height * width / image.width))))
    out = Image.new("RGB", (width, sum(i.height for i in images)), "white")
    top = 0
    for image in images:
        out.paste(image, (0, top))
        top += image.height
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "images" / "hero.png"))
    args = parser.parse_args()
    demo = lesson.load_demo("twins", num_frames=FRAME + 1)
    result, cache = run_with_cache(demo.model, demo.frames, demo.first_labels, frame=FRAME)
    query, source = lesson.follow_query(
        demo.sequence, FRAME, result.object_ids[OBJ], result.labels.numpy()
    )
    common = dict(obj=OBJ, query_frame=FRAME)
    figures = [
        viz.affinity_maps(
            cache, demo.frames, result.memory_frames, query, stage="affinity", **common
        ),  # fmt: skip
        viz.topk_on_memory(cache, demo.frames, result.memory_frames, query, scale="r3", **common),
        viz.decoder_output(cache, demo.frames[FRAME], obj=OBJ),
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    image = stacked(figures)
    image.save(out, optimize=True)
    print(f"wrote {out} ({image.width} x {image.height}; query cell {query} from the {source})")


if __name__ == "__main__":
    main()
