#!/usr/bin/env bash
# Create .venv/ with a pinned, mutually compatible torch + OpenMMLab + pyiqa stack and iter_mm (editable).
#
#   bash tools/setup_env.sh            # idempotent; a rerun on the same machine takes about 15-25 s
#
# Environment overrides:
#   PYTHON=python3.11                  interpreter used to create the venv
#   ITER_MM_CACHE=~/.cache/iter-mm     where the mmcv wheel (built once per machine, ~16-20 min on 2 cores) is kept
#   ITER_MM_FORCE=1                    reinstall the pinned set even if the stamp says it is current
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3.11}"
CACHE="${ITER_MM_CACHE:-$HOME/.cache/iter-mm}"
VENV="$ROOT/.venv"
VPY="$VENV/bin/python"
MMCV_VERSION=2.1.0
STEP="start"
T0=$(date +%s)

# pip prints one harmless warning per package for the machine's partial local indexes: hide those lines.
quiet() { "$@" 2>&1 | { grep -v "is neither a file nor a directory" || true; }; return "${PIPESTATUS[0]}"; }
step() { STEP="$1"; printf '\n[setup_env %3ds] %s\n' "$(( $(date +%s) - T0 ))" "$1"; }
trap 'rc=$?; if [ $rc -ne 0 ]; then echo "[setup_env] FAILED at step: $STEP (exit $rc)" >&2; fi' EXIT

step "check interpreter ($PYTHON)"
command -v "$PYTHON" >/dev/null || { echo "need $PYTHON on PATH (or set PYTHON=...)" >&2; exit 1; }
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { echo "the pinned set is for Python 3.11" >&2; exit 1; }

step "create virtual environment .venv/"
[ -x "$VPY" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VPY" -m pip --disable-pip-version-check)

# The stamp records what the venv was built from; equal stamp => only verify imports.
STAMP_SRC=$(cat requirements/pinned.txt requirements/runtime.txt requirements/tests.txt setup.py tools/setup_env.sh | sha256sum | cut -c1-16)
STAMP_FILE="$VENV/.iter_mm_stamp"
if [ "${ITER_MM_FORCE:-0}" != 1 ] && [ -f "$STAMP_FILE" ] && [ "$(cat "$STAMP_FILE")" = "$STAMP_SRC" ]; then
  step "venv is current (stamp $STAMP_SRC); skipping installs"
else
  step "build tools (pip, setuptools>=77,<81, wheel, ninja)"
  quiet "${PIP[@]}" install -q --upgrade "pip>=24" "setuptools>=77,<81" wheel ninja

  step "pinned packages (requirements/pinned.txt, no dependency resolution: the set is complete)"
  quiet "${PIP[@]}" install -q --no-deps -r requirements/pinned.txt

  MMCV_WHEEL=$(ls "$CACHE"/wheels/mmcv-${MMCV_VERSION}-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$MMCV_WHEEL" ]; then
    step "build mmcv==${MMCV_VERSION} with ops from source (once per machine; ~17 min on 2 cores)"
    mkdir -p "$CACHE/wheels" "$CACHE/src"
    BUILD=$(mktemp -d "$CACHE/src/build.XXXXXX")
    quiet "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation -d "$BUILD" "mmcv==${MMCV_VERSION}"
    tar -xzf "$BUILD"/mmcv-${MMCV_VERSION}.tar.gz -C "$BUILD"
    # torch>=2.10 headers need C++20; mmcv 2.1.0 hard-codes -std=c++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$BUILD/mmcv-${MMCV_VERSION}/setup.py"
    (cd "$BUILD/mmcv-${MMCV_VERSION}" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      "${PIP[@]}" wheel -v --no-deps --no-build-isolation -w "$BUILD/dist" . > "$BUILD/build.log" 2>&1) \
      || { echo "mmcv build failed; log: $BUILD/build.log" >&2; tail -n 40 "$BUILD/build.log" >&2; exit 1; }
    cp "$BUILD"/dist/mmcv-*.whl "$CACHE/wheels/"
    MMCV_WHEEL=$(ls "$CACHE"/wheels/mmcv-${MMCV_VERSION}-*.whl | head -n1)
    rm -rf "$BUILD"
  else
    step "mmcv wheel from cache: $MMCV_WHEEL"
  fi
  step "install mmcv"
  quiet "${PIP[@]}" install -q --no-deps --force-reinstall "$MMCV_WHEEL"

  step "install iter_mm (editable)"
  quiet "${PIP[@]}" install -q --no-deps --no-build-isolation -e .
  echo "$STAMP_SRC" > "$STAMP_FILE"
fi

step "verify imports"
"$VPY" - <<'EOF'
import warnings
warnings.filterwarnings('ignore')
import torch, mmcv, mmcv.ops, mmengine, mmagic.models, mmagic.apis, pyiqa, iter_mm
print(f'torch {torch.__version__} | mmengine {mmengine.__version__} | mmcv {mmcv.__version__} | '
      f'mmagic ok | pyiqa {pyiqa.__version__} | iter_mm {iter_mm.__version__}')
EOF
step "done"
