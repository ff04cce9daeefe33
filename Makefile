# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo test bench clean

$(BIN)/dcltal: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# the CPU wheel from this machine's disk; the project's torch range then installs nothing bigger
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/dcltal

demo: install
	$(BIN)/dcltal demo --out dcltal-demo

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) dcltal-demo
