# The README's two quick-start commands.
.PHONY: demo test
demo:
	python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/hmmnlab segment --weights data_samples/weights/demo.pth --frames data_samples/JPEGImages/480p/twins --first-mask data_samples/Annotations/480p/twins/00000.png --out out/twins
test:
	python3 -m venv .venv && .venv/bin/pip install -q -e ".[dev]" && .venv/bin/python -m pytest
