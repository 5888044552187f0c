"""docs/code-layout.md (the README's "how the code is laid out") stays true: every module, file and
dotted name it gives exists, and every module of the package is in its table."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "code-layout.md"


def code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def resolves(dotted: str) -> bool:
    """Whether ``hmmnlab.a.b.c`` is a module or an attribute of one."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            if not hasattr(value, name):
                return False
            value = getattr(value, name)
        return True
    return False


def test_every_dotted_name_on_the_page_exists():
    names = [s for s in code_spans(PAGE.read_text()) if re.fullmatch(r"hmmnlab(\.\w+)+", s)]
    assert len(names) >= 5
    missing = [n for n in names if not resolves(n)]
    assert not missing, f"docs/code-layout.md names what does not exist: {missing}"


def test_every_file_on_the_page_exists():
    text = PAGE.read_text()
    paths = [s for s in code_spans(text) if re.fullmatch(r"hmmnlab/[\w/]+(\.py|/)", s)]
    rows = [line.split("|")[1] for line in text.splitlines() if line.startswith("| `hmmnlab/")]
    for row in rows:  # "`hmmnlab/a.py`, `b.py`": the names after the first are beside it
        first, *rest = code_spans(row)
        paths += [str(Path(first).parent / name) for name in rest if name.endswith(".py")]
    assert len(paths) >= 10
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"docs/code-layout.md lists files that do not exist: {missing}"


def test_every_top_level_module_is_on_the_page():
    text = PAGE.read_text()
    listed = {Path(s).name for s in code_spans(text) if s.endswith(".py") or s.endswith("/")}
    listed |= {Path(s).name + "/" for s in code_spans(text) if s.endswith("/")}
    package = ROOT / "hmmnlab"
    modules = {p.name for p in package.glob("*.py")} - {"__init__.py", "__main__.py"}
    modules |= {p.name + "/" for p in package.iterdir() if (p / "__init__.py").exists()}
    absent = sorted(m for m in modules if m not in listed)
    assert not absent, f"docs/code-layout.md does not say what these hold: {absent}"
