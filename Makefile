# PancScan: `make install`, then `make test`. Research software, not a medical device.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
DATA ?= ../shared/data/nih-pancreas-ct-slices

.PHONY: install test test-unit predict evaluate train bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,test]'
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q -p no:cacheprovider

# Fast tests only: no TensorFlow, no shared data.
test-unit: install
	$(PY) -m pytest -q tests/unit

# make predict FILE=path/to/slice.jpg
predict: install
	$(VENV)/bin/pancscan predict $(FILE)

evaluate: install
	$(VENV)/bin/pancscan evaluate --data $(DATA) --out evaluation

# Reproduces the shipped model (about 37 minutes on 2 cores) into runs/model.
train: install
	$(VENV)/bin/pancscan train --data $(DATA) --out runs/model --epochs 28 --pairs 12 --crop 128 --seed 20261127

bench: install
	$(PY) bench/bench_model.py --data $(DATA)

clean:
	rm -rf $(VENV) evaluation .pytest_cache
