"""Looking inside the read: what the model attends to, and what happens when one part changes.

- ``trace.py``: ``run_with_cache`` (a video's hook points, per frame and scale) and
  ``hmmnlab trace``;
- ``teaching.py``: does a read land on the object? (top-k precision, flow hits, border share);
- ``interventions.py``: causal experiments with hooks (ablate, transplant, patch);
- ``lesson.py``: what the notebooks' lessons share (the demo model, the sample dataset);
- ``run_files.py``: a run's files read back (per-frame scores, worst frames, filmstrips, two reads
  compared), for the notebooks and the report;
- ``demo_runs.py`` and ``report.py``: ``hmmnlab demo``'s runs, and its HTML report.

The figures are in :mod:`hmmnlab.viz`, the ipywidgets inspector in :mod:`hmmnlab.widgets`.
Nothing is imported here.
"""
