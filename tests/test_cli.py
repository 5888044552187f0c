"""The command line starts quickly: only the module of the command being run is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hmmnlab.commands.cli import COMMANDS, build_parser, command_parser


def modules_after(code: str) -> set[str]:
    """The top-level modules imported by a fresh interpreter running ``code``."""
    script = (
        f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split("\n")[-2].split())


def test_help_does_not_import_torch():
    """Item 13: `hmmnlab --help` took 2.5-7 s importing torch (nor does it import Ray)."""
    code = "from hmmnlab.commands.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    modules = modules_after(code)
    assert "torch" not in modules and "ray" not in modules


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
    code = f"from hmmnlab.commands.cli import main\nassert main({args!r}) == 0"
    modules = modules_after(code)
    assert "hmmnlab" in modules and "torch" not in modules
    assert (tmp_path / "out" / "global_results.csv").is_file()


def test_building_every_parser_does_not_import_torch():
    """cli.py builds every command's parser; the run functions are imported only when run."""
    modules = modules_after("from hmmnlab.commands.cli import build_parser\nbuild_parser()")
    assert "hmmnlab" in modules and "torch" not in modules and "ray" not in modules


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_runs_a_function_of_its_module(name):
    import importlib

    runner = build_parser().parse_args(REQUIRED[name]).func
    assert runner is COMMANDS[name].run
    function = runner.load()
    assert callable(function) and function is getattr(importlib.import_module(runner.module),
                                                      runner.function)  # fmt: skip


#: The fewest arguments each command parses with (nothing is run).
REQUIRED = {
    "segment": ["segment", "--weights", "w", "--frames", "f", "--first-mask", "m", "--out", "o"],
    "trace": ["trace", "--weights", "w", "--frames", "f", "--first-mask", "m", "--frame", "1",
              "--out", "o.npz"],
    "score": ["score", "--davis", "d", "--year", "2017", "--pred", "p", "--out", "o"],
    "eval": ["eval", "--davis", "d", "--year", "2017", "--weights", "w", "--out", "o"],
    "ablate": ["ablate", "--davis", "d", "--year", "2017", "--weights", "w", "--out", "o"],
    "samples": ["samples", "--out", "o"],
    "train": ["train", "--out", "o"],
    "demo": ["demo"],
    "download": ["download", "davis", "--year", "2017", "--root", "r"],
}  # fmt: skip


def test_demo_frames_help_gives_the_reports_number():
    from hmmnlab.commands import cli
    from hmmnlab.inside import demo_runs

    assert cli.DEMO_FRAMES == demo_runs.DEMO_FRAMES


def test_the_readme_command_lines_use_options_the_parsers_have():
    """Every `--option` of an `hmmnlab COMMAND ...` line in the bash blocks of the README and of
    the reference pages in docs/ exists."""
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    pages = [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]
    readme = "\n".join(page.read_text() for page in pages)
    checked = set()
    for block in re.findall(r"```bash\n(.*?)```", readme, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = line.split()
            starts = [i for i, word in enumerate(words) if word.endswith("hmmnlab")]
            if not starts or starts[0] + 1 >= len(words) or words[starts[0] + 1] not in COMMANDS:
                continue
            name = words[starts[0] + 1]
            known = {o for a in command_parser(name)._actions for o in a.option_strings}
            for word in words[starts[0] + 2 :]:
                option = word.strip("[]").split("=")[0]
                if option.startswith("--"):
                    assert option in known, f"README: hmmnlab {name} has no option {option}"
            checked.add(name)
    assert {"segment", "trace", "eval", "score", "train", "demo", "ablate"} <= checked


def test_the_readme_links_and_picture_exist():
    """The README's and docs pages' relative links (and the opening picture) point at files."""
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    for page in [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name}: the link {target} is missing"
    assert "(docs/images/hero.png)" in (repo / "README.md").read_text()
