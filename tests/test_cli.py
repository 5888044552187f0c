"""The command line starts quickly: only the module of the command being run is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hmmnlab.cli import COMMANDS, build_parser


def modules_after(code: str) -> set[str]:
    """The top-level modules imported by a fresh interpreter running ``code``."""
    script = (
        f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split("\n")[-2].split())


def test_help_does_not_import_torch():
    """Item 13: `hmmnlab --help` took 2.5-7 s importing torch."""
    code = "from hmmnlab.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    assert "torch" not in modules_after(code)


def test_score_does_not_import_torch(tmp_path):
    import shutil
    from pathlib import Path

    samples = Path(__file__).resolve().parents[1] / "data_samples"
    root = tmp_path / "davis"
    shutil.copytree(samples / "Annotations/480p/solo-blob", root / "Annotations/480p/solo-blob")
    shutil.copytree(samples / "ImageSets", root / "ImageSets")
    pred = root / "Annotations" / "480p"
    args = ["score", "--davis", str(root), "--year", "2017", "--pred", str(pred),
            "--out", str(tmp_path / "out"), "--sequences", "solo-blob"]  # fmt: skip
    code = f"from hmmnlab.cli import main\nassert main({args!r}) == 0"
    modules = modules_after(code)
    assert "hmmnlab" in modules and "torch" not in modules
    assert (tmp_path / "out" / "global_results.csv").is_file()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_placeholder_help_is_the_commands_own(name):
    full = build_parser()._subparsers._group_actions[0]
    helps = {action.dest: action.help for action in full._choices_actions}
    assert helps[name] == COMMANDS[name][2]
