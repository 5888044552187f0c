"""Deterministic synthetic videos with exact masks, written in the DAVIS layout.

Each video shows a few textured objects moving over a textured background seen by a panning,
slowly zooming camera. The objects change size, turn, hide one another (the nearer one wins, and
the label map shows only what is visible), may leave the frame and come back, and may come as
**twins**: two objects with the same shape and the same texture whose paths cross, so that only
the continuity of their motion tells them apart. Mild photometric noise (a gain flicker and
Gaussian pixel noise) and soft shadows keep the task from being a pure colour lookup; the
``camouflage`` option draws the object colours from the background's.

Everything is procedural numpy maths (value noise, stripes, warped checkers, colour ramps, smooth
star-shaped blobs) so that a spec gives the same video byte for byte on any machine:
``VideoSpec.seed`` seeds ``numpy.random.Generator`` streams derived from it and nothing reads a
global random state.

Coordinates: a pixel ``(row i, column j)`` has its centre at ``(x, y) = (j, i)``. Object centres
are ``(x, y)`` in frame pixels; angles are radians, counter-clockwise as seen on screen.

Typical use::

    frames, labels = generate_video(VideoSpec("demo", seed=1, num_objects=3))
    # frames: T x H x W x 3 uint8 RGB, labels: T x H x W uint8 (0 background, k object k)
    write_davis("data/synth", random_specs(100, seed=0), split="train")

``hmmnlab samples --out data_samples`` (:mod:`hmmnlab.commands.samples`, the command) regenerates
the bundled samples.

:func:`write_youtube_vos` (``hmmnlab samples --youtube-vos DIR``) writes a small set in the
YouTube-VOS layout (``train/``, ``valid/``, ``valid_all_frames/``, each with ``meta.json``): objects
that enter after the first frame (not drawn before), every 5th frame kept, validation annotated only
where objects first appear.

The package, by job: :mod:`~hmmnlab.data.synthetic.spec` (``VideoSpec``, ``Scene``),
:mod:`~hmmnlab.data.synthetic.textures` (random streams, shapes, textures),
:mod:`~hmmnlab.data.synthetic.scene` (``build_scene``: coverage, layout, looks),
:mod:`~hmmnlab.data.synthetic.render` (``render_frame``, ``generate_video``),
:mod:`~hmmnlab.data.synthetic.writers` (the DAVIS layout), :mod:`~hmmnlab.data.synthetic.catalogue`
(the bundled samples, random training sets) and :mod:`~hmmnlab.data.synthetic.youtube` (the
YouTube-VOS-layout set). Every public name is importable from here.
"""

from hmmnlab.data.synthetic.catalogue import (
    SAMPLES_JPEG_QUALITY,
    random_specs,
    sample_specs,
    samples_readme,
    write_samples,
)
from hmmnlab.data.synthetic.render import generate_video, object_masks, render_frame
from hmmnlab.data.synthetic.scene import build_scene
from hmmnlab.data.synthetic.spec import Scene, SceneObject, VideoSpec
from hmmnlab.data.synthetic.textures import Shape
from hmmnlab.data.synthetic.writers import write_davis, write_davis_arrays
from hmmnlab.data.synthetic.youtube import (
    YOUTUBE_MIN_ENTRY_PIXELS,
    YOUTUBE_STRIDE,
    YouTubeSpec,
    render_youtube_video,
    write_youtube_vos,
    youtube_vos_specs,
)

__all__ = [
    "SAMPLES_JPEG_QUALITY",
    "Scene",
    "SceneObject",
    "Shape",
    "VideoSpec",
    "YOUTUBE_MIN_ENTRY_PIXELS",
    "YOUTUBE_STRIDE",
    "YouTubeSpec",
    "build_scene",
    "generate_video",
    "object_masks",
    "random_specs",
    "render_frame",
    "render_youtube_video",
    "sample_specs",
    "samples_readme",
    "write_davis",
    "write_davis_arrays",
    "write_samples",
    "write_youtube_vos",
    "youtube_vos_specs",
]
