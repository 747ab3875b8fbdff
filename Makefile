# PancScan: `make run` (the local stack), `make test`. Research software, not a medical device.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
DATA ?= ../shared/data/nih-pancreas-ct-slices
MSD ?= ../shared/data/msd-pancreas-tumour-ct-slices

HOST ?= 127.0.0.1
PORT ?= 8080
S3_PORT ?= 5000

TOOLS ?= .tools
SAM_CLI ?= .sam-cli
STACK ?= pancscan-dev

.PHONY: install install-serve install-gateway gateway run test test-unit mutate chromium dicom-tools build-inference tools sam-cli deploy hospital-client audit predict evaluate figure-drift train bench bench-series bench-capacity bench-pipeline load fuzz clean

# Installation by need: serving and the local stack (no TensorFlow), then the rest for training,
# evaluation, tests and benchmarks.
$(VENV)/.serve-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[serve]'
	touch $@

$(VENV)/.installed: $(VENV)/.serve-installed
	$(PY) -m pip install -q -e '.[train,serve,test,fuzz,gateway]'
	touch $@

install-serve: $(VENV)/.serve-installed
install: $(VENV)/.installed

# The whole stack on this machine: site and API on $(PORT), moto (S3, DynamoDB, SQS) on $(S3_PORT).
run: install-serve
	$(VENV)/bin/pancscan serve --host $(HOST) --port $(PORT) --s3-port $(S3_PORT)

# Unit and integration tests in a random order (pytest-randomly; the seed is printed: rerun one with
# --randomly-seed=N), then the model and end-to-end tests in file order.
test: install chromium dicom-tools build-inference tools sam-cli
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -p no:cacheprovider tests/unit tests/integration
	$(PY) -m pytest -q -p no:cacheprovider -p no:randomly tests/model tests/e2e

# Debian's DICOM tools the tests drive: dicom3tools' dciodvfy (the reference IOD validator checks every
# DICOM object PancScan writes) and Orthanc with its DICOMweb plugin (the PACS of the gateway's test).
dicom-tools:
	@command -v dciodvfy >/dev/null && test -x /usr/sbin/Orthanc && test -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); $$SUDO apt-get update -qq && \
	  $$SUDO apt-get install -y -qq dicom3tools orthanc orthanc-dicomweb >/dev/null; }

# Tools with pins of their own (checkov, pip-audit), kept out of the project's environment.
tools: $(TOOLS)/.installed
$(TOOLS)/.installed:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --upgrade pip
	$(TOOLS)/bin/pip install -q checkov==3.3.30 pip-audit
	touch $@

# aws-sam-cli pins old boto3 and click: its own environment.
sam-cli: $(SAM_CLI)/.installed
$(SAM_CLI)/.installed:
	$(PYTHON) -m venv $(SAM_CLI)
	$(SAM_CLI)/bin/pip install -q --upgrade pip
	$(SAM_CLI)/bin/pip install -q aws-sam-cli==1.170.0
	touch $@

# Build (the inference image needs Docker) and deploy with samconfig.toml, then publish the site.
deploy: install-serve sam-cli
	$(SAM_CLI)/bin/sam build
	$(SAM_CLI)/bin/sam deploy --config-env $(or $(ENV),default)
	$(PY) -m pancscan_local.deploy_site --stack $(STACK)

# The DICOM gateway at the hospital (docs/hospital-integration.md, "DICOM gateway"): PACS=AE@HOST:PORT (or
# PACS_DICOMWEB=URL) API=... TOKEN_URL=...; the client id and secret in PANCSCAN_CLIENT_ID and PANCSCAN_CLIENT_SECRET.
gateway: install-gateway
	$(VENV)/bin/pancscan gateway $(if $(PACS),--pacs $(PACS),--pacs-dicomweb $(PACS_DICOMWEB)) --api $(API) \
	  --token-url $(TOKEN_URL) --port $(or $(DICOM_PORT),11112) --state $(or $(STATE),pancscan-gateway)

install-gateway: $(VENV)/.gateway-installed
$(VENV)/.gateway-installed: $(VENV)/.serve-installed
	$(PY) -m pip install -q -e '.[gateway]'
	touch $@

# A hospital's app client (AuthMode jwt): prints its id and secret once. Runbook: docs/deploy-and-operations.md.
hospital-client: install-serve
	@test -n "$(NAME)" || (echo "usage: make hospital-client NAME=<hospital> [STACK=...]" >&2; exit 2)
	$(PY) -m pancscan_local.hospital_client --stack $(STACK) add $(NAME)

# Known vulnerabilities in both functions' pinned requirements (needs PyPI's vulnerability data;
# --strict fails when a package cannot be audited).
audit: tools
	$(TOOLS)/bin/pip-audit --strict --progress-spinner off -r functions/inference/requirements.txt -r layers/runtime/requirements.txt

# Browser tests drive Debian's Chromium; Playwright's own browser download would fail here.
chromium:
	@command -v chromium >/dev/null || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The inference function's image contents, as its Dockerfile builds them (no Docker engine here).
build-inference: build/inference/.built
build/inference/.built: functions/inference/Dockerfile functions/inference/requirements.txt functions/inference/app.py $(wildcard layers/runtime/pancscan/*.py layers/runtime/pancscan/*/*.py) model/pancscan.tflite | install
	$(PY) -m pancscan_local.image build/inference
	touch $@

# Fast tests only: no TensorFlow, no shared data.
test-unit: install
	$(PY) -m pytest -q tests/unit

# Mutation testing (mutmut) of the modules that guard data and patients: writes mutation/report.md.
# Not part of `make test`: about 42 minutes from scratch on two cores.
mutate: install
	$(PY) -m pip install -q 'mutmut==3.8.1'
	$(PY) mutation/run.py

# make predict FILE=path/to/slice.jpg
predict: install-serve
	$(VENV)/bin/pancscan predict $(FILE)

# The card's figures, on the shipped model's test cases and patients (model/evaluation holds the shipped report).
evaluate: install
	$(VENV)/bin/pancscan evaluate --data $(DATA) --msd $(MSD) --out evaluation

# How far the evaluation moves when only float order changes (LiteRT threads, XNNPACK off): what the
# reproduction test's tolerances rest on (model/pancscan_model/reproduction.py). About 9 minutes.
figure-drift: install
	$(PY) bench/figure_drift.py --data $(DATA) --msd $(MSD) --out build/drift

# Reproduces the shipped model into runs/model (TrainConfig's defaults; time in MODEL_CARD.md).
train: install
	$(VENV)/bin/pancscan train --data $(DATA) --msd $(MSD) --out runs/model --seed 20261129

bench: install
	$(PY) bench/bench_model.py --data $(DATA)

# A 300- and a 600-slice DICOM series through `pancscan predict`: stages, peak memory, ratios to model 0.2.0.
bench-series: install
	$(PY) bench/bench_series.py --data $(DATA)

# The exported model at several widths (its channels x 1, 1.5, 2, 3): ms a slice, ratios to width 1.
bench-capacity: install
	$(PY) bench/bench_capacity.py

bench-pipeline: install
	$(PY) bench/bench_pipeline.py --data $(DATA)

# 200 scans from 20 concurrent clients against a fresh local stack (loopback only).
load: install-serve
	$(PY) bench/load.py --data $(DATA)

# Fuzz the upload readers with atheris for FUZZ_SECONDS (default 300).
FUZZ_SECONDS ?= 300
fuzz: install
	$(PY) fuzz/fuzz_read_scan.py -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 fuzz/corpus

clean:
	rm -rf $(VENV) $(TOOLS) $(SAM_CLI) evaluation .pytest_cache build test-artifacts
