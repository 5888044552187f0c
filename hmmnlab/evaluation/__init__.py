"""Running the model over datasets on disk, and scoring what it wrote.

- ``runner.py``: the one resumable runner (``segment_videos``) over any
:class:`hmmnlab.data.video.Video`,
  given a layout of its masks; ``records.py``: atomic writes, output locks, what a run records;
  ``resources.py``: the memory a video will need, checked before any work.
- ``segment.py`` (``hmmnlab segment``: one folder of frames), ``davis.py`` (``hmmnlab eval`` on
DAVIS),
  ``youtube.py`` (on YouTube-VOS: its layout, submission zip and local scores), ``scoring.py``
  (``hmmnlab score``), ``metrics.py`` (J, F and the DAVIS statistics).

Nothing is imported here: ``from hmmnlab.evaluation import metrics`` loads the metrics alone.
"""
