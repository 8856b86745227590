#!/usr/bin/env bash
# The GPU checks of one device session, in one go (issue 11): ITER at 128x128 x4, T=8, random paper-scale weights,
# through tools/benchmark_inference.py with PyTorch only (no MMagic needed on the device).
#   bash tools/device_check.sh [OUT_DIR]      # default: $OUT (the device tool's folder) or ./device_results
# Writes one JSON per run and a log; each run is limited so that a slow one cannot eat the session. A dry run
# here: DEVICE=cpu SIZE=16 PYTHON=.venv/bin/python bash tools/device_check.sh /tmp/dc
# The training checks with the whole stack (both stages, --amp, dist_train.sh on 2 GPUs): tools/device_train_check.sh.
set -u
cd "$(dirname "$0")/.."
out=${1:-${OUT:-device_results}}
mkdir -p "$out"
py=${PYTHON:-python}
log="$out/device_check.log"
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name())" \
    2>&1 | tee "$log"
run() {  # name, seconds, benchmark arguments...
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*" | tee -a "$log"
    timeout "$limit" "$py" tools/benchmark_inference.py --device "${DEVICE:-cuda}" --size "${SIZE:-128}" \
        --models iter "$@" \
        > "$out/$name.json" 2>> "$log"
    echo "   exit $?" | tee -a "$log"
}
run bf16_b1 150 --dtype bf16 --batch 1 --warmup 3 --repeats 10 --profile 30
run bf16_b1_graphs 150 --dtype bf16 --batch 1 --warmup 3 --repeats 10 --profile 30 --cuda-graphs --no-flops
run bf16_b16_graphs 150 --dtype bf16 --batch 16 --warmup 2 --repeats 3 --no-flops --cuda-graphs
run bf16_b16 150 --dtype bf16 --batch 16 --warmup 1 --repeats 3 --no-flops
run fp32_b1 120 --dtype fp32 --batch 1 --warmup 2 --repeats 5 --no-flops
# CUDA against CPU on one small input (random paper-scale weights, fixed seed; the sampling noise is
# device-independent): share of equal tokens (S_l and final) and image PSNR, fp32 and bf16 on the GPU; and CUDA
# graphs against eager CUDA (three inputs: the first captures, the others replay): tokens equal, image difference
echo "== agreement: cuda vs cpu" | tee -a "$log"
timeout 120 "$py" - > "$out/agreement.json" 2>> "$log" <<'PY'
import json, math, sys, warnings
warnings.simplefilter('ignore')
import torch
from iter_mm.models.archs import ITERNet
from iter_mm.models.inference import restore_image
dev = sys.argv[1] if len(sys.argv) > 1 else ('cuda' if torch.cuda.is_available() else 'cpu')
torch.manual_seed(0)
net = ITERNet(scale=4).eval()
lq = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
ref = restore_image(net, lq, alpha=1.0, seed=3, return_result=True)
net = net.to(dev)
out = {}
for dtype in ('fp32', 'bf16'):
    res = restore_image(net, lq.to(dev), alpha=1.0, seed=3, dtype=dtype, return_result=True)
    mse = (res.image.cpu() - ref.image).square().mean().item()
    out[dtype] = dict(lq_tokens_equal=(res.lq_tokens.cpu() == ref.lq_tokens).float().mean().item(),
                      tokens_equal=(res.tokens.cpu() == ref.tokens).float().mean().item(),
                      psnr_vs_cpu_fp32=float('inf') if mse == 0 else 10 * math.log10(1 / mse))
    if dev == 'cuda':
        checks = []
        for k in range(3):
            x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(10 + k)).to(dev)
            eager = restore_image(net, x, alpha=1.0, seed=k, dtype=dtype, return_result=True)
            graphed = restore_image(net, x, alpha=1.0, seed=k, dtype=dtype, cuda_graphs=True, return_result=True)
            checks.append(dict(tokens_equal=(eager.tokens == graphed.tokens).float().mean().item(),
                               image_max_abs_diff=(eager.image - graphed.image).abs().max().item()))
        out[dtype]['cuda_graphs_vs_eager'] = checks
print(json.dumps(dict(device=dev, **out), indent=1))
PY
echo "   exit $?" | tee -a "$log"
