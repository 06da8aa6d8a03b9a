# Two entry points, each doing its own set-up on a fresh machine:
#   make bench   the built-in benchmark suite on the CPU default
#   make test    the plugin's own tests, static checks and the wheel check (what CI runs)
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN := torch==2.13.0
TRT_STUBS_PIN := tensorrt-stubs==10.13.0.35.1

.PHONY: bench test check unit wheel-check venv clean

$(VENV)/.installed: pyproject.toml requirements/ci.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -r requirements/ci.txt
	$(PY) -m pip install -q --no-deps $(TRT_STUBS_PIN)
	$(PY) -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

bench: venv
	$(PY) -m pytest benchmarks $(ARGS)

unit: venv
	$(PY) -m pytest tests -n 2 $(ARGS)

check: venv
	$(PY) -m ruff check pytest_trt tests lab benchmarks tools
	$(PY) tools/tensorrt_stubs.py .mypy-stubs
	$(PY) -m mypy
	$(VENV)/bin/hadolint docker/Dockerfile
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

# The wheel, installed in a fresh venv without the checkout, runs the shipped suite from an empty folder.
wheel-check: venv
	$(PY) tools/wheel_check.py --torch $(TORCH_PIN)

test: check unit wheel-check

clean:
	rm -rf $(VENV) .trt-cache .mypy_cache .ruff_cache .pytest_cache
