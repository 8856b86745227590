#!/usr/bin/env bash
# Create .venv/ with a pinned, mutually compatible torch + OpenMMLab + pyiqa stack and iter_mm (editable).
#
#   bash tools/setup_env.sh             # idempotent; a rerun takes 15-50 s (it verifies the imports)
#   bash tools/setup_env.sh --dry-run   # print each step and its environment; build and install nothing
#
# Environment overrides (docs/gpu_setup.md has the GPU-node and cluster recipes):
#   PYTHON=python3.11          interpreter used to create the venv
#   ITER_MM_VENV=DIR           the venv to create or update (default: .venv/ of this checkout)
#   ITER_MM_CACHE=DIR          where mmcv wheels are kept (default ~/.cache/iter-mm; one build per machine, kind
#                              and torch: ~16-20 min on 2 cores)
#   ITER_MM_TORCH=pinned       torch from requirements/torch.txt (default: PyPI's torch 2.14.1, built for CUDA 13.0)
#   ITER_MM_TORCH=keep         keep the torch (and torchvision) already importable in the venv: a cluster module or
#                              a build from PyTorch's own index installed beforehand; nothing of torch is installed
#   ITER_MM_TORCH='torch==X torchvision==Y' [ITER_MM_TORCH_INDEX=URL]   install that build (with its CUDA packages)
#   ITER_MM_MMCV_CUDA=1        build mmcv's CUDA ops too (needs nvcc of torch's CUDA major version; ITER needs none
#                              of mmcv's ops: by default mmcv's CPU ops are built with the GPUs hidden)
#   ITER_MM_BROWSER=0          skip tools/setup_browser.sh (the browser for the web demo's test), if it exists
#   ITER_MM_FORCE=1            reinstall the pinned set even if the stamp says it is current
#   ITER_MM_DRY_RUN=1          the same as --dry-run
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DRY="${ITER_MM_DRY_RUN:-0}"
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d;s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (only --dry-run)" >&2; exit 2 ;;
  esac
done
PYTHON="${PYTHON:-python3.11}"
CACHE="${ITER_MM_CACHE:-$HOME/.cache/iter-mm}"
VENV="${ITER_MM_VENV:-$ROOT/.venv}"
VPY="$VENV/bin/python"
TORCH_CHOICE="${ITER_MM_TORCH:-pinned}"
TORCH_INDEX="${ITER_MM_TORCH_INDEX:-}"
MMCV_KIND=cpu
[ "${ITER_MM_MMCV_CUDA:-0}" = 1 ] && MMCV_KIND=cuda
MMCV_VERSION=2.1.0
# The only torch the earlier script (flat cache, no stamp) ever installed before building mmcv: requirements pinned
# torch==2.14.1 from the first commit on, and PyPI's wheel of it reports this version.
LEGACY_TORCH=2.14.1+cu130
STEP="start"
T0=$(date +%s)

# pip prints one harmless warning per package for the machine's partial local indexes: hide those lines.
quiet() { "$@" 2>&1 | { grep -v "is neither a file nor a directory" || true; }; return "${PIPESTATUS[0]}"; }
step() {
  STEP="$*"
  if [ "$DRY" = 1 ]; then printf '\n[setup_env dry-run] %s\n' "$*"
  else printf '\n[setup_env %3ds] %s\n' "$(( $(date +%s) - T0 ))" "$*"; fi
}
say() { printf '    %s\n' "$*"; }
# run CMD...: the command (with its `env` assignments, if any) is printed; a dry run stops there.
run() {
  printf '    %s %s\n' "$([ "$DRY" = 1 ] && echo 'would run:' || echo '$')" "$(printf '%q ' "$@")"
  [ "$DRY" = 1 ] || quiet "$@"
}
die() {
  if [ "$DRY" = 1 ]; then printf '    WOULD STOP HERE: %s\n' "$*"; else echo "error: $*" >&2; exit 1; fi
}
trap 'rc=$?; if [ $rc -ne 0 ]; then echo "[setup_env] FAILED at step: $STEP (exit $rc)" >&2; fi' EXIT

# torch_facts: the installed torch as shell assignments (empty TORCH_VERSION when the venv has none).
torch_facts() {
  TORCH_VERSION="" TORCH_CUDA="" TORCH_HIP="" TORCH_GPUS=0 TORCHVISION_VERSION=""
  [ -x "$VPY" ] || return 0
  eval "$("$VPY" -W ignore - 2>/dev/null <<'EOF' || true
import shlex
try:
    import torch
except Exception:
    raise SystemExit(0)
facts = dict(TORCH_VERSION=torch.__version__, TORCH_CUDA=torch.version.cuda or '',
             TORCH_HIP=getattr(torch.version, 'hip', None) or '',
             TORCH_GPUS=torch.cuda.device_count() if torch.cuda.is_available() else 0)
try:  # installed is enough: torchvision imports numpy and pillow, which come with the pinned set
    from importlib.metadata import version
    facts['TORCHVISION_VERSION'] = version('torchvision')
except Exception:
    pass
for k, v in facts.items():
    print(f'{k}={shlex.quote(str(v))}')
EOF
)"
}

step "check interpreter ($PYTHON) and venv ($VENV)"
if [ -x "$VPY" ]; then
  say "venv exists: $VENV"
else
  command -v "$PYTHON" >/dev/null || die "need $PYTHON on PATH (or set PYTHON=...)"
  "$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null \
    || die "the pinned set is for Python 3.11 ($PYTHON is not)"
  if [ "$TORCH_CHOICE" = keep ]; then
    # A cluster's torch module lives outside the venv: let the venv see it.
    run "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    run "$PYTHON" -m venv "$VENV"
  fi
fi
PIP=("$VPY" -m pip --disable-pip-version-check)

step "torch: ITER_MM_TORCH=$TORCH_CHOICE"
torch_facts
case "$TORCH_CHOICE" in
  pinned)
    TORCH_WANT="$(grep -E '^torch==' requirements/torch.txt | cut -d= -f3)"
    say "requirements/torch.txt: torch $TORCH_WANT and the packages tied to its CUDA build (CUDA 13.0 on PyPI)" ;;
  keep)
    [ -n "$TORCH_VERSION" ] || die "ITER_MM_TORCH=keep, but $VPY cannot import torch: install your torch build into" \
      "the venv first (or load the cluster's module before the venv is created: it is then made with" \
      "--system-site-packages)"
    [ -n "$TORCHVISION_VERSION" ] || die "ITER_MM_TORCH=keep, but torchvision is missing: install the torchvision" \
      "built for torch $TORCH_VERSION (from the same index) first"
    say "keeping torch ${TORCH_VERSION:-?} and torchvision ${TORCHVISION_VERSION:-?}: nothing of torch is installed"
    TORCH_WANT="$TORCH_VERSION" ;;
  *)
    TORCH_WANT="$(printf '%s\n' $TORCH_CHOICE | sed -n 's/^torch==//p')"
    say "installing the named build: $TORCH_CHOICE${TORCH_INDEX:+ from $TORCH_INDEX}" ;;
esac

# The stamp records what the venv was built from; equal stamp => only verify imports.
STAMP_SRC=$({ cat requirements/pinned.txt requirements/torch.txt requirements/runtime.txt requirements/tests.txt \
  setup.py tools/setup_env.sh; echo "torch=$TORCH_CHOICE index=$TORCH_INDEX want=$TORCH_WANT mmcv=$MMCV_KIND"; } \
  | sha256sum | cut -c1-16)
STAMP_FILE="$VENV/.iter_mm_stamp"
if [ "$DRY" != 1 ] && [ "${ITER_MM_FORCE:-0}" != 1 ] && [ "$(cat "$STAMP_FILE" 2>/dev/null)" = "$STAMP_SRC" ]; then
  step "venv is current (stamp $STAMP_SRC); skipping installs"
  CURRENT=1
else
  CURRENT=0
fi

if [ "$CURRENT" = 0 ]; then
  step "build tools (pip, setuptools>=77,<81, wheel, ninja)"
  run "${PIP[@]}" install -q --upgrade "pip>=24" "setuptools>=77,<81" wheel ninja

  case "$TORCH_CHOICE" in
    pinned) step "install torch (requirements/torch.txt, no dependency resolution)"
            run "${PIP[@]}" install -q --no-deps -r requirements/torch.txt ;;
    keep)   step "install torch: skipped (ITER_MM_TORCH=keep)" ;;
    *)      step "install torch: $TORCH_CHOICE (with the CUDA packages that build depends on)"
            # shellcheck disable=SC2086
            run "${PIP[@]}" install -q $TORCH_CHOICE ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} ;;
  esac

  step "pinned packages (requirements/pinned.txt, no dependency resolution: the set is complete without torch)"
  run "${PIP[@]}" install -q --no-deps -r requirements/pinned.txt
fi

step "torch, driver and GPUs"
if [ "$CURRENT" = 0 ] && [ "$TORCH_CHOICE" != keep ] && [ "$DRY" != 1 ]; then torch_facts; fi  # torch was installed
if [ -z "$TORCH_VERSION" ]; then
  say "torch not installed yet (dry run): would be $TORCH_WANT"
  TORCH_VERSION="$TORCH_WANT"
else
  say "torch $TORCH_VERSION | built for CUDA ${TORCH_CUDA:-none (CPU-only build)}${TORCH_HIP:+ | ROCm $TORCH_HIP}"
fi
DRIVER=""
if command -v nvidia-smi >/dev/null; then
  DRIVER=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' ' || true)
  say "NVIDIA driver ${DRIVER:-? (nvidia-smi gave no version)} |" \
      "GPUs listed by nvidia-smi: $(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)"
else
  say "no NVIDIA driver here (nvidia-smi not found)"
fi
say "GPUs visible to torch: $TORCH_GPUS${CUDA_VISIBLE_DEVICES+ (CUDA_VISIBLE_DEVICES='$CUDA_VISIBLE_DEVICES')}"
if [ -n "$TORCH_CUDA" ] && [ -n "$DRIVER" ]; then
  # Oldest Linux driver of each CUDA major version (NVIDIA's minor-version compatibility table).
  case "${TORCH_CUDA%%.*}" in 11) NEED=450.80.02 ;; 12) NEED=525.60.13 ;; 13) NEED=580.65.06 ;; *) NEED="" ;; esac
  if [ -n "$NEED" ] && [ "$(printf '%s\n%s\n' "$NEED" "$DRIVER" | sort -V | head -n1)" != "$NEED" ]; then
    say "DRIVER TOO OLD: torch $TORCH_VERSION is built for CUDA $TORCH_CUDA, which needs NVIDIA driver >= $NEED;" \
        "this node has $DRIVER, so torch cannot use its GPUs. Install a torch build for an older CUDA, e.g." \
        "ITER_MM_TORCH='torch==2.14.1+cu126 torchvision==0.29.1+cu126'" \
        "ITER_MM_TORCH_INDEX=https://download.pytorch.org/whl/cu126" \
        "or keep the cluster's torch with ITER_MM_TORCH=keep (docs/gpu_setup.md)."
  elif [ "$TORCH_GPUS" = 0 ] && [ "$DRY" != 1 ]; then
    say "torch sees no GPU although the driver is there: check CUDA_VISIBLE_DEVICES and the job's GPU allocation."
  fi
elif [ -z "$TORCH_CUDA" ] && [ -n "$DRIVER" ] && [ -n "$TORCH_VERSION" ] && [ "$DRY" != 1 ]; then
  say "this torch is a CPU-only build: it will not use this node's GPUs (choose a CUDA build, docs/gpu_setup.md)."
fi

# ---- mmcv: one wheel per (kind, torch, Python) in $CACHE/wheels/mmcv-<v>/<key>/ with a BUILD_INFO stamp ----
PYTAG=$("$( [ -x "$VPY" ] && echo "$VPY" || echo "$PYTHON")" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
KEY="torch${TORCH_VERSION}-${PYTAG}-${MMCV_KIND}"
[ "$MMCV_KIND" = cuda ] && KEY="${KEY}${TORCH_CUDA}"
WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION/$KEY"
info_get() { sed -n "s/^$1=//p" "$2" 2>/dev/null | head -n1; }
# cached_wheel: the wheel of $WHEEL_DIR if its stamp names this kind, torch and Python; else nothing.
cached_wheel() {
  local info="$WHEEL_DIR/BUILD_INFO"
  [ "$(info_get kind "$info")" = "$MMCV_KIND" ] && [ "$(info_get torch "$info")" = "$TORCH_VERSION" ] \
    && [ "$(info_get python "$info")" = "$PYTAG" ] && ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1
}
write_info() {  # DIR HOW...
  printf 'kind=%s\ntorch=%s\ntorch_cuda=%s\npython=%s\nmmcv=%s\ndate=%s\nhow=%s\n' "$MMCV_KIND" "$TORCH_VERSION" \
    "${TORCH_CUDA:-none}" "$PYTAG" "$MMCV_VERSION" "$(date -u +%FT%TZ)" "${*:2}" > "$1/BUILD_INFO"
}
# ext_kind WHEEL: load the wheel's mmcv._ext against the venv's torch (all symbols resolved, as Python dlopens with
# RTLD_NOW) and print what mmcv says it was compiled with: 'not available' = CPU ops only, else a CUDA version.
ext_kind() {
  local tmp; tmp=$(mktemp -d)
  "$VPY" -m zipfile -e "$1" "$tmp" >/dev/null 2>&1 || { rm -rf "$tmp"; return 1; }
  if readelf -d "$tmp"/mmcv/_ext*.so 2>/dev/null | grep -q -E 'NEEDED.*(torch_cuda|c10_cuda|cudart)'; then
    rm -rf "$tmp"; echo "cuda (links CUDA libraries)"; return 0
  fi
  (cd "$tmp" && PYTHONPATH="$tmp" "$VPY" -W ignore -c \
    'import torch, mmcv._ext as e; print(e.get_compiling_cuda_version())' 2>/dev/null) \
    || { rm -rf "$tmp"; return 1; }
  rm -rf "$tmp"
}

step "mmcv $MMCV_VERSION wheel for $KEY"
MMCV_WHEEL=""
if [ "$CURRENT" = 0 ]; then
  MMCV_WHEEL=$(cached_wheel || true)
  if [ -n "$MMCV_WHEEL" ]; then
    say "reusing the cached wheel $MMCV_WHEEL (BUILD_INFO: kind $MMCV_KIND, torch $TORCH_VERSION, $PYTAG)"
  else
    for other in "$CACHE"/wheels/mmcv-"$MMCV_VERSION"/*/BUILD_INFO; do
      [ -f "$other" ] && [ "$(dirname "$other")" != "$WHEEL_DIR" ] && say "not reused: $(dirname "$other")" \
        "(kind $(info_get kind "$other"), torch $(info_get torch "$other"), $(info_get python "$other"))"
    done
    [ -f "$WHEEL_DIR/BUILD_INFO" ] && say "not reused: $WHEEL_DIR (its BUILD_INFO says kind" \
      "$(info_get kind "$WHEEL_DIR/BUILD_INFO"), torch $(info_get torch "$WHEEL_DIR/BUILD_INFO"))"
    say "no cached wheel in $WHEEL_DIR"
    LEGACY=$(ls "$CACHE"/wheels/mmcv-"$MMCV_VERSION"-"$PYTAG"-*.whl 2>/dev/null | head -n1 || true)
    if [ -n "$LEGACY" ] && [ "$MMCV_KIND" = cpu ] && [ "$TORCH_VERSION" = "$LEGACY_TORCH" ] && [ "$DRY" != 1 ]; then
      # A wheel of the earlier script (flat cache, no stamp): it always built against torch $LEGACY_TORCH. Taken only
      # if its extension loads against this torch and reports CPU ops only.
      compiled=$(ext_kind "$LEGACY" || echo "does not load")
      if [ "$compiled" = "not available" ]; then
        mkdir -p "$WHEEL_DIR"
        ln -f "$LEGACY" "$WHEEL_DIR/" 2>/dev/null || cp "$LEGACY" "$WHEEL_DIR/"
        write_info "$WHEEL_DIR" "migrated from $LEGACY (earlier script: built against torch $LEGACY_TORCH;" \
          "its _ext loads against this torch and reports CUDA 'not available' = CPU ops)"
        MMCV_WHEEL="$WHEEL_DIR/$(basename "$LEGACY")"
        say "earlier script's wheel $LEGACY: loads against torch $TORCH_VERSION, CPU ops only: recorded in $WHEEL_DIR"
      else
        say "earlier script's wheel $LEGACY not reused (its extension: $compiled)"
      fi
    elif [ -n "$LEGACY" ] && [ "$MMCV_KIND" = cpu ] && [ "$TORCH_VERSION" = "$LEGACY_TORCH" ]; then
      say "would check the earlier script's wheel $LEGACY (loads against this torch, CPU ops only?) and take it if so"
    elif [ -n "$LEGACY" ]; then
      say "earlier script's wheel $LEGACY (CPU ops, torch $LEGACY_TORCH) does not fit" \
          "($MMCV_KIND, torch $TORCH_VERSION)"
    fi
  fi
else
  say "venv is current: mmcv stays as installed"
fi

if [ "$CURRENT" = 0 ] && [ -z "$MMCV_WHEEL" ]; then
  if [ "$MMCV_KIND" = cpu ]; then
    # mmcv's setup.py builds CUDA ops when torch.cuda.is_available() or FORCE_CUDA=1 (and MLU/MPS/NPU/DIOPI ops
    # when asked): hide the GPUs and say no to each, so a GPU node builds the same CPU ops as a CPU machine.
    BUILD_ENV=(CUDA_VISIBLE_DEVICES= FORCE_CUDA=0 FORCE_MLU=0 FORCE_MPS=0 FORCE_NPU=0 MMCV_WITH_DIOPI=0 MMCV_WITH_OPS=1)
    step "build mmcv==$MMCV_VERSION with CPU ops, GPUs hidden from the build" \
      "(once per machine and torch; ~17 min on 2 cores)"
    [ -n "$TORCH_HIP" ] && say "warning: a ROCm torch: mmcv $MMCV_VERSION builds HIP ops whenever ROCm is found"
  else
    BUILD_ENV=(FORCE_CUDA=1 MMCV_WITH_OPS=1)
    step "build mmcv==$MMCV_VERSION with CUDA ops (ITER_MM_MMCV_CUDA=1; long: every kernel, for each GPU architecture)"
    [ -n "$TORCH_CUDA" ] || die "ITER_MM_MMCV_CUDA=1 needs a CUDA build of torch; torch $TORCH_VERSION has no CUDA"
    NVCC="${CUDA_HOME:+$CUDA_HOME/bin/nvcc}"
    [ -n "$NVCC" ] && [ -x "$NVCC" ] || NVCC=$(command -v nvcc || true)
    if [ -z "$NVCC" ]; then
      die "ITER_MM_MMCV_CUDA=1 needs nvcc for CUDA $TORCH_CUDA (set CUDA_HOME or put nvcc on PATH)," \
        "or leave it unset for CPU ops"
    else
      NVCC_CUDA=$("$NVCC" --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
      say "nvcc $NVCC: CUDA ${NVCC_CUDA:-?}; torch built for CUDA $TORCH_CUDA"
      if [ "${NVCC_CUDA%%.*}" != "${TORCH_CUDA%%.*}" ]; then
        die "nvcc is CUDA $NVCC_CUDA but torch $TORCH_VERSION is built for CUDA $TORCH_CUDA: PyTorch's extension" \
          "builder refuses a different major version. Load the matching CUDA toolkit, or leave ITER_MM_MMCV_CUDA unset"
      elif [ "$NVCC_CUDA" != "$TORCH_CUDA" ]; then
        say "warning: nvcc $NVCC_CUDA and torch's CUDA $TORCH_CUDA differ in the minor version (PyTorch allows it)"
      fi
      BUILD_ENV+=(CUDA_HOME="$(dirname "$(dirname "$NVCC")")")
    fi
    say "TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-<unset: the visible GPUs' architectures, else PyTorch's list>}"
  fi
  BUILD_ENV+=(MAX_JOBS="${MAX_JOBS:-$(nproc)}")
  say "build environment: ${BUILD_ENV[*]}"
  if [ "$DRY" = 1 ]; then
    run "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation -d BUILD "mmcv==$MMCV_VERSION"
    run sed -i 's/-std=c++17/-std=c++20/g' "BUILD/mmcv-$MMCV_VERSION/setup.py"
    run env "${BUILD_ENV[@]}" "${PIP[@]}" wheel -v --no-deps --no-build-isolation -w BUILD/dist \
      "BUILD/mmcv-$MMCV_VERSION"
    say "would check the built extension against '$MMCV_KIND', then keep it as $WHEEL_DIR/ with BUILD_INFO"
    seen=$(env "${BUILD_ENV[@]}" "$VPY" -W ignore -c 'import torch; print(torch.cuda.is_available())' 2>/dev/null \
      || echo '? (no torch yet)')
    say "what torch reports inside the build environment: cuda.is_available() = $seen"
  else
    mkdir -p "$CACHE/src"
    BUILD=$(mktemp -d "$CACHE/src/build.XXXXXX")
    run "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation -d "$BUILD" "mmcv==$MMCV_VERSION"
    tar -xzf "$BUILD/mmcv-$MMCV_VERSION.tar.gz" -C "$BUILD"
    # torch>=2.10 headers need C++20; mmcv 2.1.0 hard-codes -std=c++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$BUILD/mmcv-$MMCV_VERSION/setup.py"
    say "log: $BUILD/build.log"
    env "${BUILD_ENV[@]}" "${PIP[@]}" wheel -v --no-deps --no-build-isolation -w "$BUILD/dist" \
      "$BUILD/mmcv-$MMCV_VERSION" > "$BUILD/build.log" 2>&1 \
      || { tail -n 40 "$BUILD/build.log" >&2; die "mmcv build failed; log: $BUILD/build.log"; }
    BUILT=$(ls "$BUILD"/dist/mmcv-*.whl | head -n1)
    compiled=$(ext_kind "$BUILT" || echo "does not load")
    case "$MMCV_KIND:$compiled" in
      "cpu:not available"|cuda:[0-9]*) ;;
      *) die "the built mmcv extension reports '$compiled', not $MMCV_KIND ops; log: $BUILD/build.log" ;;
    esac
    rm -rf "$WHEEL_DIR"; mkdir -p "$WHEEL_DIR"
    cp "$BUILT" "$WHEEL_DIR/"
    write_info "$WHEEL_DIR" "built by tools/setup_env.sh with ${BUILD_ENV[*]}; extension reports CUDA '$compiled'"
    MMCV_WHEEL="$WHEEL_DIR/$(basename "$BUILT")"
    rm -rf "$BUILD"
  fi
fi

if [ "$CURRENT" = 0 ]; then
  step "install mmcv${MMCV_WHEEL:+ from $MMCV_WHEEL}"
  run "${PIP[@]}" install -q --no-deps --force-reinstall "${MMCV_WHEEL:-$WHEEL_DIR/mmcv-$MMCV_VERSION-$PYTAG-...whl}"

  step "install iter_mm (editable)"
  run "${PIP[@]}" install -q --no-deps --no-build-isolation -e .
  if [ "$DRY" = 1 ]; then say "would write the stamp $STAMP_SRC to $STAMP_FILE"
  else echo "$STAMP_SRC" > "$STAMP_FILE"; fi
fi

step "verify imports"
if [ "$DRY" = 1 ]; then
  say "would import torch, mmcv.ops, mmengine, mmagic.models, mmagic.apis, pyiqa, iter_mm"
else
  "$VPY" - <<'EOF'
import warnings
warnings.filterwarnings('ignore')
import torch, mmcv, mmcv.ops, mmengine, mmagic.models, mmagic.apis, pyiqa, iter_mm
from mmcv.ops import get_compiling_cuda_version
ops = 'CPU' if get_compiling_cuda_version() == 'not available' else 'CUDA ' + get_compiling_cuda_version()
print(f'torch {torch.__version__} | mmengine {mmengine.__version__} | mmcv {mmcv.__version__} ({ops} ops) | '
      f'mmagic ok | pyiqa {pyiqa.__version__} | iter_mm {iter_mm.__version__}')
EOF
fi

if [ -f tools/setup_browser.sh ]; then
  if [ "${ITER_MM_BROWSER:-1}" = 0 ]; then
    step "browser for the web demo's test: skipped (ITER_MM_BROWSER=0)"
  else
    step "browser for the web demo's test (tools/setup_browser.sh; skip with ITER_MM_BROWSER=0)"
    run bash tools/setup_browser.sh || say "warning: tools/setup_browser.sh failed (exit $?): the Python set-up above" \
      "is complete; only the web demo's browser test lacks its browser"
  fi
fi
step "done"
