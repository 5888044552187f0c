# The README's two quick-start commands.
.PHONY: demo test
demo:
	python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/hmmnlab demo
test:
	python3 -m venv .venv && .venv/bin/pip install -q -e ".[dev]" && .venv/bin/python -m pytest
