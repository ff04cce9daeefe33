# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo test bench clean ablate

$(BIN)/dcltal: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# the CPU wheel from this machine's disk; the project's torch range then installs nothing bigger
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,all]'
	touch $@

install: $(BIN)/dcltal

demo: install
	$(BIN)/dcltal demo --out dcltal-demo

# the paper's Tables 1-4 on the synthetic benchmark, 3 seeds (docs/ablations.md; sized for < 45 min on 2 CPU cores)
ablate: install
	$(BIN)/dcltal synth ablation-study/synth --videos-train 60 --videos-test 30
	$(BIN)/dcltal ablate configs/synth_ablation.yaml --out ablation-study --seeds 3

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) dcltal-demo ablation-study
