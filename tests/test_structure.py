"""The layers do not import each other in circles, and pure modules do not import the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest


def imported_after(module: str) -> set[str]:
    code = (
        f"import sys, {module}; print(' '.join(m for m in sys.modules if m.startswith('hmmnlab')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_the_memory_bank_does_not_import_the_network():
    assert "hmmnlab.model" not in imported_after("hmmnlab.memory")


@pytest.mark.parametrize(
    "module", ["hmmnlab.viz", "hmmnlab.trace", "hmmnlab.inference", "hmmnlab.interventions"]
)
def test_pure_modules_do_not_import_the_cli(module):
    cli = {"hmmnlab.cli", "hmmnlab.segment", "hmmnlab.evaluate", "hmmnlab.scoring"}
    assert not cli & imported_after(module), (
        f"{module} imports {sorted(cli & imported_after(module))}"
    )


def test_the_old_import_paths_still_work():
    from hmmnlab import features
    from hmmnlab.model import MemoryFeatures, QueryFeatures, ReadOut
    from hmmnlab.trace import guidance_frames

    assert MemoryFeatures is features.MemoryFeatures and ReadOut is features.ReadOut
    assert QueryFeatures is features.QueryFeatures and callable(guidance_frames)
