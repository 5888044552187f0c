"""Old import paths of modules that moved into subpackages, kept working with a warning.

``from hmmnlab.evaluate import evaluate`` still works and gives the module at its new place,
:mod:`hmmnlab.evaluation.davis` (the same module object, so patching either name patches both); a
``DeprecationWarning`` names the new path. :data:`MOVED` is the whole table; ``hmmnlab/__init__.py``
installs :class:`MovedFinder` once, when the package is first imported.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: old module -> its place since December 2026 (issue 21: the top level grouped by job)
MOVED = {
    "hmmnlab.evaluate": "hmmnlab.evaluation.davis",
    "hmmnlab.evaluate_youtube": "hmmnlab.evaluation.youtube",
    "hmmnlab.scoring": "hmmnlab.evaluation.scoring",
    "hmmnlab.segment": "hmmnlab.evaluation.segment",
    "hmmnlab.runner": "hmmnlab.evaluation.runner",
    "hmmnlab.records": "hmmnlab.evaluation.records",
    "hmmnlab.resources": "hmmnlab.evaluation.resources",
    "hmmnlab.metrics": "hmmnlab.evaluation.metrics",
    "hmmnlab.trace": "hmmnlab.inside.trace",
    "hmmnlab.interventions": "hmmnlab.inside.interventions",
    "hmmnlab.lesson": "hmmnlab.inside.lesson",
    "hmmnlab.report": "hmmnlab.inside.report",
    "hmmnlab.teaching": "hmmnlab.inside.teaching",
    "hmmnlab.cli": "hmmnlab.commands.cli",
    "hmmnlab.options": "hmmnlab.commands.options",
    "hmmnlab.download": "hmmnlab.data.download",
}


class _Alias(importlib.abc.Loader):
    """Loads an old name as the module at its new place."""

    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec):
        warnings.warn(
            f"{spec.name} moved to {self.new}; import it from there",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(self.new)

    def exec_module(self, module) -> None:  # the module ran at its new place
        pass


class MovedFinder(importlib.abc.MetaPathFinder):
    """Finds the old names of :data:`MOVED` (and only those)."""

    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        return None if new is None else importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    """Put one :class:`MovedFinder` at the end of ``sys.meta_path`` (after the real finders, so
    it answers only for names no file has)."""
    if not any(isinstance(finder, MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedFinder())
