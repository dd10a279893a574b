#!/usr/bin/env bash
# The GPU check of issue 19: one prepared script for the day a CUDA device is lent (under 8 minutes:
# the steps' time limits add up to 475 s).
#
#   bash benchmarks/gpu_check.sh            # from the repository root, with the project's venv active or in .venv
#
# 1. the gpu-marked tests, with torch.cuda.set_sync_debug_mode("warn") (every host sync is reported);
# 2. solve on CUDA (symflow simulate --device cuda), the adjoint and train_node on CUDA, stopped and
#    resumed (--resume), and a 2-rank torchrun (NCCL; needs two GPUs, skipped with a note on one);
# 3. the performance matrix B = 256 ... 10^6 (benchmarks/bench_gpu.py) -> benchmarks/results/gpu_matrix.{json,png}.
# Logs go to benchmarks/results/gpu_check/; the last line says which steps failed. Every step has its own
# time limit, so one hung step cannot eat the others' time.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
SYMFLOW=("$PY" -m symflow.cli.main)
OUT=benchmarks/results/gpu_check
WORK=$(mktemp -d)
mkdir -p "$OUT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} SYMFLOW_PROGRESS=0
FAILED=()
START=$SECONDS

step() {  # step NAME LIMIT_S COMMAND...: run with a time limit, log to $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s, $((SECONDS - START))s elapsed)"
    if timeout "$limit" "$@" >"$OUT/$name.log" 2>&1; then
        echo "   ok: $(tail -n 1 "$OUT/$name.log")"
    else
        echo "   FAILED (exit $?): see $OUT/$name.log"; tail -n 5 "$OUT/$name.log"
        FAILED+=("$name")
    fi
}

"$PY" - >"$OUT/device.log" 2>&1 <<'PYEOF'
import torch
assert torch.cuda.is_available(), "no CUDA device: this script is for a GPU machine"
print(torch.__version__, torch.version.cuda, [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
PYEOF
cat "$OUT/device.log"
grep -q "no CUDA device" "$OUT/device.log" && exit 1
NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count())")

# 1. gpu-marked tests under the sync debugger (warnings are counted in the log's summary line).
step gpu_tests 90 "$PY" -c "
import sys, torch, pytest
torch.cuda.set_sync_debug_mode('warn')
sys.exit(pytest.main(['-q', '-m', 'gpu', '-p', 'no:cacheprovider', '-W', 'always::UserWarning', 'tests']))"
echo "   syncs reported in gpu tests: $(grep -c 'synchronizing CUDA operation' "$OUT/gpu_tests.log" || true)"

# 2. the end-to-end paths on CUDA.
step simulate 30 "${SYMFLOW[@]}" simulate henon_heiles --n 4096 --t-end 10 --n-obs 21 --sampling irregular \
    --rtol 1e-9 --atol 1e-11 --device cuda -o "$WORK/hh.h5" --no-progress
step adjoint 40 "$PY" -c "
import torch, symflow.systems as S
from symflow.integrators import solve
f = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.Tanh(), torch.nn.Linear(64, 4)).double().cuda()
y0 = S.get_system('henon_heiles').sample(1024, seed=0).cuda().requires_grad_(True)
ts = torch.linspace(0, 5, 11, device='cuda', dtype=torch.float64)
for m, kw in (('dopri5', {}), ('gl4', {'dt': 0.05})):
    sol = solve(lambda t, y: f(y), y0, ts, m, adjoint=True, **kw)
    sol.ys.square().sum().backward()
    assert torch.isfinite(y0.grad).all() and y0.grad.device.type == 'cuda'
    print(m, 'adjoint ok, |grad| =', float(y0.grad.norm())); y0.grad = None"
NODE=(train node --data "$WORK/hh.h5" --model hnn --width 64 --depth 2 --batch-size 64 --window 6
      --val-every 10 --checkpoint-every 10 --log-every 5 --device cuda --no-eval --quiet)
step train_node 45 "${SYMFLOW[@]}" "${NODE[@]}" --steps 20 --out "$WORK/node"
step train_node_resume 30 "${SYMFLOW[@]}" "${NODE[@]}" --steps 30 --out "$WORK/node" --resume
if [ "$NGPU" -ge 2 ]; then
    step torchrun_2 60 "$(dirname "$PY")/torchrun" --standalone --nproc_per_node=2 -m symflow.cli.main \
        "${NODE[@]}" --steps 10 --out "$WORK/ddp"
else
    echo "== torchrun_2 skipped: NCCL needs two GPUs, this machine has $NGPU" | tee "$OUT/torchrun_2.log"
fi

# 3. the performance matrix (stops adding batch sizes after its own budget).
step matrix 180 "$PY" -m benchmarks.bench_gpu --device cuda --budget-s 110

echo "== done in $((SECONDS - START))s; failed: ${FAILED[*]:-none}"
rm -rf "$WORK"
[ ${#FAILED[@]} -eq 0 ]
