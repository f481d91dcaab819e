#!/bin/sh
# Remove from a finished venv (docker/install.sh) what the service never loads, before the Docker image copies it.
# Only what nothing imports or executes at run time: the C++ unit tests and build tools inside the torch wheel, its
# C++ headers (for compiling extensions and torch.compile's C++ code; rnnmt uses neither), pip (the image installs
# nothing at run time) and the bytecode of packages serving never imports. Python modules stay, even unused ones:
# torch imports its own subpackages lazily, from paths no test here covers, so deleting one could fail only in
# production. `make test-image` checks the slimmed image end to end. Sizes below: torch 2.13.0+cpu.
#
#   usage: docker/slim-venv.sh VENV_DIR
set -eu
VENV=${1:?usage: slim-venv.sh VENV_DIR}
torch=$("$VENV/bin/python" -c "import os, torch; print(os.path.dirname(torch.__file__))")

rm -rf "$torch/test"                      # ~83 MB: C++ unit-test executables (gtest)
rm -rf "$torch/include"                   # ~62 MB: C++ headers (torch.utils.cpp_extension, inductor's C++ codegen)
find "$torch/bin" -maxdepth 1 -type f \
    \( -name 'test_*' -o -name '*Test' -o -name 'protoc*' \) -exec rm -f {} +   # ~45 MB: C++ tests, protobuf compiler
"$VENV/bin/python" -m pip uninstall -q -y pip                                    # ~16 MB
# ~64 MB: the bytecode of torch's symbolic-math dependencies, which only torch.compile and symbolic shapes import,
# never serving; the packages stay (torch requires them) and would still import, from source.
site=$(dirname "$torch")
for pkg in sympy networkx mpmath; do
    find "$site/$pkg" -name __pycache__ -type d -prune -exec rm -rf {} +
done

# What serving needs still works: torch imports and computes, the package and its service import.
"$VENV/bin/python" - <<'PY'
import sys
from pathlib import Path

import torch
import app.main  # noqa: F401
assert torch.nn.functional.linear(torch.ones(1, 2), torch.ones(3, 2)).sum().item() == 6.0
if loaded := [m for m in ("sympy", "networkx", "mpmath") if m in sys.modules]:
    print("slim-venv.sh: warning: the service now imports", loaded, "without bytecode (slower start-up)")
bin_left = sorted(p.name for p in (Path(torch.__file__).parent / "bin").iterdir())
print("slim-venv.sh: torch", torch.__version__, "and app.main import; torch/bin keeps", bin_left)
PY
