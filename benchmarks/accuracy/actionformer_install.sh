#!/usr/bin/env bash
# Install ActionFormer (actionformer==1.5.0), the peer of the accuracy benchmark, into a venv of
# its own. It is something to measure against, never a dependency of dcltal.
#
#   benchmarks/accuracy/actionformer_install.sh [VENV]    (default: .peer-venv/actionformer)
#
# Idempotent: when VENV already imports actionformer with its compiled NMS, it does nothing.
# Facts behind each step: ../shared/peers/actionformer.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-$ROOT/.peer-venv/actionformer}"
PY="${PYTHON:-python3.11}"
CHECK='from actionformer.utils import HAS_CPP_NMS; import torch; assert HAS_CPP_NMS, "no C++ NMS"; print("actionformer ok: HAS_CPP_NMS =", HAS_CPP_NMS, "| torch", torch.__version__)'

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "$CHECK" 2>/dev/null; then
    echo "already installed in $VENV"
    exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)

# The CPU torch first and pinned: every later step must see it as satisfied, or pip would
# resolve a newer (CUDA) torch.
"${PIP[@]}" "torch==2.13.0"
# torchvision unpinned pulls a newer torch; h5py is imported by actionformer.datasets but not
# declared; wheel is needed for the non-isolated sdist build below.
"${PIP[@]}" "torch==2.13.0" "torchvision==0.28.0" h5py wheel setuptools
# No build isolation: the sdist compiles its C++ NMS (nms_1d_cpu, needs g++) against the venv's
# torch; an isolated build would fetch another torch. torch stays pinned on the same line.
"${PIP[@]}" --no-build-isolation "torch==2.13.0" "actionformer==1.5.0"

"$VENV/bin/python" -c "$CHECK"
