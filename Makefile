# The two commands of the README contract. Both create .venv on a fresh machine.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The cluster image tag: pyproject.toml's version is the single source of truth.
# Push elsewhere with e.g. `make image IMAGE=registry.example.com/ml/restoray:0.1.0`.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE ?= restoray:$(VERSION)

.PHONY: demo test install clean image gpu-check

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	# torch first, pinned: a bare `torch` would pull the multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/restoray demo --workdir demo_out

test: $(STAMP)
	$(BIN)/python -m pytest tests -q

# On a CUDA machine (~8 min): GPU tests, every family's e2e test on one GPU worker in bf16, and the
# GPU bench records, into gpu_check.json (pipelines/gpu_check.py).
gpu-check: $(STAMP)
	$(BIN)/python -m pipelines.gpu_check --json gpu_check.json

image:
	docker build -f infra/Dockerfile -t $(IMAGE) .

clean:
	rm -rf $(VENV) demo_out .pytest_cache
