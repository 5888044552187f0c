"""hmmnlab: learn, inspect and ablate HMMN video object segmentation."""

from hmmnlab import moved

moved.install()  # the old import paths of the modules that moved (hmmnlab.evaluate, ...) still work
