#!/bin/sh
# Install rnnmt into a virtual environment: PyTorch first (CPU wheels by default), then the package with a
# constraints file that pins torch to that same version, so resolving the package cannot swap torch for another
# build (the default PyPI torch on Linux is the CUDA one, with several GB of nvidia-* packages).
#
# This is the one install recipe of the Docker image: the Dockerfile runs it (the two steps in two layers, so
# editing the code does not reinstall torch), and tests/test_deploy.py replays it in a temporary venv
# (RNNMT_SLOW_TESTS=1), so the two cannot drift apart.
#
#   usage: docker/install.sh torch   VENV_DIR              create the venv, install torch
#          docker/install.sh package VENV_DIR SOURCE_DIR   install the package (torch pinned), check it imports
#          docker/install.sh all     VENV_DIR SOURCE_DIR   both
#
# Environment (the Dockerfile passes its build arguments through):
#   PYTHON           interpreter that creates the venv (default python3)
#   TORCH_SPEC       pip requirement for torch (default torch==2.13.0)
#   TORCH_INDEX_URL  index that serves that torch build (default the CPU one, https://download.pytorch.org/whl/cpu;
#                    e.g. https://download.pytorch.org/whl/cu126 for CUDA)
#   PIP_FIND_LINKS   a wheelhouse directory that already holds the torch wheel (pip reads it itself): when set,
#                    torch comes from it and TORCH_INDEX_URL is not contacted (offline / air-gapped builds)
# Everything else comes from pip's own index (PyPI, or PIP_INDEX_URL for a mirror).
set -eu

USAGE="usage: install.sh {torch|package|all} VENV_DIR [SOURCE_DIR]"
STEP=${1:?$USAGE}
VENV=${2:?$USAGE}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}

# An empty build argument still arrives as an empty variable, which pip would read as a find-links location.
if [ -z "${PIP_FIND_LINKS:-}" ]; then unset PIP_FIND_LINKS; fi
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
PIP="$VENV/bin/python -m pip"
constraints="$VENV/constraints.txt"

install_torch() {
    "$PYTHON" -m venv "$VENV"
    printf '%s\n' "$TORCH_SPEC" > "$constraints"
    if [ -n "${PIP_FIND_LINKS:-}" ]; then
        echo "install.sh: $TORCH_SPEC from the wheelhouse $PIP_FIND_LINKS (its dependencies from the index)"
        $PIP install "$TORCH_SPEC"
    else
        echo "install.sh: $TORCH_SPEC from $TORCH_INDEX_URL"
        $PIP install --index-url "$TORCH_INDEX_URL" "$TORCH_SPEC"
    fi
}

install_package() {
    src=${1:?$USAGE}
    # A regular (not editable) install: the venv alone is the application, the source is not needed at run time.
    $PIP install -c "$constraints" "$src"
    # A CPU image must not have picked up a CUDA wheel by accident (say, a wheelhouse without the +cpu one).
    case "$TORCH_INDEX_URL" in */cpu | */cpu/) want_cpu=1 ;; *) want_cpu=0 ;; esac
    WANT_CPU=$want_cpu "$VENV/bin/python" - <<'PY'
import os, sys
import torch
import app.cli  # noqa: F401  (the command line)
import app.main  # noqa: F401  (the service, with every module it serves from: a subpackage missing from the
                 # installed package, say model.kernels, fails here and not at the container's start)
print("install.sh: torch", torch.__version__, "cuda", torch.version.cuda)
if os.environ["WANT_CPU"] == "1" and torch.version.cuda is not None:
    sys.exit("install.sh: a CPU build was asked for, but this torch is built for CUDA " + torch.version.cuda)
PY
}

case "$STEP" in
    torch) install_torch ;;
    package) install_package "${3:-}" ;;
    all) install_torch; install_package "${3:-}" ;;
    *) echo "$USAGE" >&2; exit 2 ;;
esac
