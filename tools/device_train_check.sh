#!/usr/bin/env bash
# The training checks that need a GPU and the whole stack (issue 9): a few iterations of stage I and of stages II+III
# with the tiny configs, without and with --amp, and tools/dist_train.sh with 2 GPUs when 2 are visible.
#
#   bash tools/device_train_check.sh --prepare     # HERE (needs the package index): fills .devstack/ (git-ignored)
#   bash tools/device_train_check.sh [OUT_DIR]     # on the GPU machine; default $OUT (the device tool's folder) or
#                                                  # ./device_results. Carry .devstack/ with the working tree.
#   bash tools/device_train_check.sh --dry-run     # anywhere: the plan, what would run and what not, and why
#
# The GPU machine reaches no package index: it gets this working tree (and what is carried), and its own python3
# with a CUDA torch. The stack comes from, in this order: PYTHON if set; .venv/bin/python if it imports the stack
# (a venv made on that machine); python3 if it imports it; else .devstack/: the pinned pure-Python packages of
# requirements/device.txt as wheels for the device's Python, installed into .devstack/site, and mmcv built there from
# its source with CPU ops and the GPUs hidden (~3-4 min on 16 cores; kept in .devstack/built for the next call on
# the same machine). Every check is limited in time; the summary says PASS / FAIL / NOT RUN and why for each.
#   ITERS=4             training iterations per check
#   LIMIT=240           seconds per training check (the mmcv build gets BUILD_LIMIT=420)
#   DEVICE_CHECK_CPU=1  run the checks without a GPU too (a try of this script on a CPU machine)
#   CHECKS='stage1 stage23'  run only these checks (names as in the summary)
#   DEV_PY=3.12         the device's Python version, for --prepare (its python3 is 3.12 as last seen)
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODE=run
OUT_DIR=""
for arg in "$@"; do
  case "$arg" in
    --prepare) MODE=prepare ;;
    --dry-run) MODE=dry ;;
    -h|--help) sed -n '2,/^set -u/p' "${BASH_SOURCE[0]}" | sed '$d;s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option: $arg" >&2; exit 2 ;;
    *) OUT_DIR="$arg" ;;
  esac
done
STACK="$ROOT/.devstack"
MMCV_VERSION=2.1.0
ITERS="${ITERS:-4}"
LIMIT="${LIMIT:-240}"

if [ "$MODE" = prepare ]; then
  set -e
  DEV_PY="${DEV_PY:-3.12}"
  PIP=(python3 -m pip --disable-pip-version-check)
  [ -x .venv/bin/python ] && PIP=(.venv/bin/python -m pip --disable-pip-version-check)
  mkdir -p "$STACK/wheels"
  echo "== wheels of requirements/device.txt for CPython $DEV_PY (manylinux x86_64) into $STACK/wheels"
  PLATFORMS=()
  for p in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux_2_5 manylinux1; do
    PLATFORMS+=(--platform "${p}_x86_64")
  done
  grep -v -E '^\s*(#|$)' requirements/device.txt | while read -r req; do
    "${PIP[@]}" download -q --no-deps --only-binary=:all: --python-version "$DEV_PY" --implementation cp \
      "${PLATFORMS[@]}" -d "$STACK/wheels" "$req" > /dev/null 2>&1 && continue
    # no wheel on the index (an sdist only): build one here; fine for pure-Python packages
    if ! "${PIP[@]}" wheel -q --no-deps -w "$STACK/wheels" "$req" > /dev/null 2>&1; then
      echo "   no wheel for $req"; continue
    fi
    echo "   $req: built here from its source"
  done
  ls "$STACK"/wheels/*-cp3[0-9]*-cp3[0-9]*.whl 2>/dev/null | grep -v "cp${DEV_PY/./}" \
    | sed 's/^/   NOT for the device: /'
  echo "== mmcv $MMCV_VERSION source"
  "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation -d "$STACK" "mmcv==$MMCV_VERSION" 2>&1 \
    | { grep -v "is neither a file nor a directory" || true; }
  du -sh "$STACK" | sed 's/^/== size (the working tree that travels may hold 64 MiB in all): /'
  echo "next: carry .devstack and run:  bash tools/device_train_check.sh"
  exit 0
fi

OUT_DIR="${OUT_DIR:-${OUT:-device_results}}"
[ "$MODE" = dry ] || mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/device_train_check.log"
SUMMARY=()
note() { if [ "$MODE" = dry ]; then echo "$*"; else echo "$*" | tee -a "$LOG"; fi; }
result() { SUMMARY+=("$(printf '%-14s %-9s %s' "$1" "$2" "${*:3}")"); note "   -> $2 ${*:3}"; }

# ---- which Python holds the stack ----
SITE="$STACK/site"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
imports() {  # PYTHON: true if it imports the stack; else false, printing the last line of the error
  local err
  err=$(PYTHONPATH="$SITE:$PYTHONPATH" "$1" -W ignore -c 'import torch, mmcv.ops, mmengine, mmagic.models, iter_mm' \
    2>&1) && return 0
  echo "${err##*$'\n'}"
  return 1
}
PY=""
for cand in ${PYTHON:-} .venv/bin/python python3; do
  command -v "$cand" >/dev/null 2>&1 || [ -x "$cand" ] || continue
  if imports "$cand" >/dev/null; then PY="$cand"; break; fi
done
FACTS_PY="${PY:-${PYTHON:-python3}}"
note "== $(date -u +%FT%TZ) device_train_check ($MODE)"
pyrun() { "$FACTS_PY" -W ignore -c "$1" 2>/dev/null; }
note "python: $(command -v "$FACTS_PY" || echo "$FACTS_PY")" \
  "($(pyrun 'import sys; print(sys.version.split()[0])' || echo none))"
GPUS=$(pyrun 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)' || echo 0)
note "torch: $(pyrun 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)' || echo 'not importable')" \
  "| GPUs visible: $GPUS"
if command -v nvidia-smi >/dev/null; then
  note "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n1)"
fi

STACK_OK=1
if [ -n "$PY" ]; then
  note "stack: $PY imports torch, mmcv.ops, mmengine, mmagic.models, iter_mm"
  result stack PASS "already importable by $PY"
else
  PY="${PYTHON:-python3}"
  if [ ! -d "$STACK/wheels" ] || [ -z "$(ls "$STACK"/mmcv-$MMCV_VERSION.tar.gz 2>/dev/null)" ]; then
    STACK_OK=0
    result stack "NOT RUN" "no Python here imports the stack ($(imports "$PY")) and .devstack/ is missing: run" \
      "'bash tools/device_train_check.sh --prepare' where pip reaches the index, and carry .devstack"
  elif [ "$MODE" = dry ]; then
    result stack "WOULD RUN" "install $(ls "$STACK"/wheels/*.whl | wc -l) wheels into $SITE and build mmcv with CPU ops" \
      "(env CUDA_VISIBLE_DEVICES= FORCE_CUDA=0 MMCV_WITH_OPS=1 MAX_JOBS=$(nproc))"
  else
    note "== stack from .devstack: wheels into $SITE"
    pip_target() {
      "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" "$@" >> "$LOG" 2>&1
    }
    pip_target "$STACK"/wheels/*.whl || note "   (pip reported errors: see the log)"
    TV=$(PYTHONPATH="$SITE:$PYTHONPATH" "$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)
    BUILT="$STACK/built/torch$TV"
    if ! ls "$BUILT"/mmcv-*.whl >/dev/null 2>&1; then
      note "== build mmcv $MMCV_VERSION with CPU ops for torch $TV, GPUs hidden from the build" \
        "(limit ${BUILD_LIMIT:-420} s)"
      SRC=$(mktemp -d); T=$(date +%s)
      tar -xzf "$STACK/mmcv-$MMCV_VERSION.tar.gz" -C "$SRC"
      sed -i 's/-std=c++17/-std=c++20/g' "$SRC/mmcv-$MMCV_VERSION/setup.py"  # torch>=2.10 headers need C++20
      if PYTHONPATH="$SITE:$PYTHONPATH" CUDA_VISIBLE_DEVICES= FORCE_CUDA=0 MMCV_WITH_OPS=1 MAX_JOBS="$(nproc)" \
         timeout "${BUILD_LIMIT:-420}" "$PY" -m pip wheel -q --no-index --no-deps --no-build-isolation \
         -w "$SRC/dist" "$SRC/mmcv-$MMCV_VERSION" > "$OUT_DIR/mmcv_build.log" 2>&1; then
        mkdir -p "$BUILT" && cp "$SRC"/dist/mmcv-*.whl "$BUILT/"
        note "   built in $(( $(date +%s) - T )) s"
      else
        note "   mmcv build failed after $(( $(date +%s) - T )) s: $(tail -n 3 "$OUT_DIR/mmcv_build.log" | tr '\n' ' ')"
      fi
      rm -rf "$SRC"
    fi
    if ls "$BUILT"/mmcv-*.whl >/dev/null 2>&1; then pip_target "$BUILT"/mmcv-*.whl; fi
    if why=$(imports "$PY"); then
      result stack PASS "from .devstack (python $PY, torch $TV)"
    else
      STACK_OK=0
      result stack FAIL "the carried stack does not import: $why"
    fi
  fi
  export PYTHONPATH="$SITE:$PYTHONPATH"
fi

# ---- the checks ----
WORK="$OUT_DIR/work"
[ "$MODE" = dry ] && WORK="${TMPDIR:-/tmp}/device_train_check_work"
if [ "$GPUS" -ge 1 ] || [ "${DEVICE_CHECK_CPU:-0}" = 1 ]; then HAVE_GPU=1; else HAVE_GPU=0; fi
# check NAME NEEDS_GPUS PREREQ_FILE COMMAND...: runs COMMAND under LIMIT unless the stack, the GPUs or the file
# a previous check should have written are missing.
check() {
  local name=$1 gpus=$2 needs=$3
  shift 3
  note "== $name: $*"
  if [ -n "${CHECKS:-}" ] && [[ " $CHECKS " != *" $name "* ]]; then result "$name" "NOT RUN" "not in CHECKS"; return; fi
  if [ "$STACK_OK" = 0 ]; then result "$name" "NOT RUN" "the stack does not import (see 'stack')"; return; fi
  if [ "$HAVE_GPU" = 0 ]; then result "$name" "NOT RUN" "no GPU visible to torch"; return; fi
  if [ "$gpus" -gt "$GPUS" ] && [ "${DEVICE_CHECK_CPU:-0}" != 1 ]; then
    result "$name" "NOT RUN" "needs $gpus GPUs, $GPUS visible"; return
  fi
  if [ -n "$needs" ] && [ "$MODE" != dry ] && [ ! -f "$needs" ]; then
    result "$name" "NOT RUN" "needs $needs from an earlier check, which did not write it"; return
  fi
  if [ "$MODE" = dry ]; then result "$name" "WOULD RUN" ""; return; fi
  local t0 rc last
  t0=$(date +%s)
  PYTHON="$PY" timeout "$LIMIT" "$@" > "$OUT_DIR/$name.log" 2>&1
  rc=$?
  last=$(grep -o 'loss[a-z_]*: [-0-9.naif]*' "$OUT_DIR/$name.log" | tail -n 3 | tr '\n' ' ')
  if [ $rc = 0 ] && ! grep -q -i -E 'loss[a-z_]*: (nan|-?inf)' "$OUT_DIR/$name.log"; then
    result "$name" PASS "$(( $(date +%s) - t0 )) s; last losses: ${last:-?}"
  elif [ $rc = 0 ]; then
    result "$name" FAIL "non-finite loss in $name.log: $last"
  else
    result "$name" FAIL "exit $rc$([ $rc = 124 ] && echo " (over ${LIMIT} s)") after $(( $(date +%s) - t0 )) s:" \
      "$(grep -v '^\s*$' "$OUT_DIR/$name.log" | tail -n 1 | cut -c1-200)"
  fi
}
S1=(--cfg-options "train_cfg.max_iters=$ITERS" "train_cfg.val_interval=$ITERS"
    "default_hooks.checkpoint.interval=$ITERS" default_hooks.logger.interval=1)
s23() { echo --cfg-options "train_cfg.max_iters=$ITERS" "train_cfg.val_interval=$ITERS" \
  "default_hooks.checkpoint.interval=$ITERS" default_hooks.logger.interval=1 "model.vqgan_ckpt=$1"; }
CK="iter_$ITERS.pth"
S1_CFG=configs/iter/swinvqgan_tiny.py
S23_CFG=configs/iter/iter_x4_tiny.py
W="$WORK"
check stage1 1 "" "$PY" tools/train.py "$S1_CFG" "${S1[@]}" --work-dir "$W/stage1"
check stage1_amp 1 "" "$PY" tools/train.py "$S1_CFG" "${S1[@]}" --work-dir "$W/stage1_amp" --amp
# shellcheck disable=SC2046
check stage23 1 "$W/stage1/$CK" "$PY" tools/train.py "$S23_CFG" $(s23 "$W/stage1/$CK") --work-dir "$W/stage23"
# shellcheck disable=SC2046
check stage23_amp 1 "$W/stage1/$CK" "$PY" tools/train.py "$S23_CFG" $(s23 "$W/stage1/$CK") --work-dir "$W/stage23_amp" \
  --amp
check dist_stage1 2 "" bash tools/dist_train.sh "$S1_CFG" 2 "${S1[@]}" --work-dir "$W/dist_stage1"
# shellcheck disable=SC2046
check dist_stage23 2 "$W/dist_stage1/$CK" bash tools/dist_train.sh "$S23_CFG" 2 $(s23 "$W/dist_stage1/$CK") \
  --work-dir "$W/dist_stage23"

note ""
note "== summary (details: $OUT_DIR/<check>.log)"
for line in "${SUMMARY[@]}"; do note "$line"; done
