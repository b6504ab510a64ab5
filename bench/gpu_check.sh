#!/usr/bin/env bash
# One prepared script for a lent GPU machine: the CUDA tests, then the kernel and decode benchmarks.
#
#   bash bench/gpu_check.sh [STEP ...]     steps: env tests_triton tests_engine bench_moe bench_engine
#                                          (default all, in that order; limits sum to under 10 minutes)
#
# Output goes to stdout and each step's log to $OUT/STEP.txt (default runs/gpu/); bench_moe also
# writes $OUT/gpu_moe.json. It installs nothing: the machine it is written for (one H200, see
# docs/kernels.md) has no network. It needs a python3 ($PYTHON) with torch (CUDA), triton, numpy,
# safetensors, tokenizers, tiktoken, transformers (the engine tests' reference) and pytest;
# compressed-tensors is optional (one test skips without it). The repository runs from its checkout
# (PYTHONPATH), not installed; no Jupyter package is needed. Every step runs even if an earlier one
# failed, each under a time limit; the script exits non-zero if any failed, naming them.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu}
PY=${PYTHON:-python3}
STEPS=${*:-env tests_triton tests_engine bench_moe bench_engine}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 K2NB_TEST_DEVICE=cuda
export TRITON_DEFAULT_FP_FUSION=1  # Triton 3.9's default, said explicitly (it warns otherwise)
failed=()

step() {  # step NAME SECONDS COMMAND...: run it under a time limit, log to $OUT/NAME.txt
    local name=$1 limit=$2
    shift 2
    [[ " $STEPS " == *" $name "* ]] || return 0
    echo "== $name (limit ${limit}s)"
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"
    local rc=${PIPESTATUS[0]}
    if ((rc == 0)); then
        echo "== $name: ok"
    else
        echo "== $name: FAILED (exit $rc$( ((rc == 124)) && echo ", over ${limit}s"))"
        failed+=("$name")
    fi
}

ENV_CHECK='
import subprocess, sys, torch, triton
print(subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm",
                      "--format=csv,noheader"], capture_output=True, text=True).stdout.strip())
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
      "triton", triton.__version__)
assert torch.cuda.is_available(), "torch sees no CUDA device"
p = torch.cuda.get_device_properties(0)
print(p.name, p.multi_processor_count, "SMs", round(p.total_memory / 2**30), "GiB")
'
step env 60 "$PY" -c "$ENV_CHECK"
if [[ " ${failed[*]-} " == *" env "* ]]; then
    echo "FAILED: $PY has no usable CUDA torch and triton; nothing else can run"
    exit 1
fi
step tests_triton 150 "$PY" -m pytest -q -x -p no:cacheprovider tests/test_triton_moe.py
step tests_engine 100 "$PY" -m pytest -q -p no:cacheprovider tests/test_engine_ops.py tests/test_engine_quant.py \
    tests/test_engine_reference.py tests/test_engine_generate.py tests/test_engine_loader.py
step bench_moe 240 "$PY" bench/gpu_moe.py --sweep --json "$OUT/gpu_moe.json"
step bench_engine 45 "$PY" bench/engine_vs_transformers.py --device cuda --dtype bfloat16 --prompt 512 --new 128

if ((${#failed[@]})); then
    echo "FAILED steps: ${failed[*]} (logs in $OUT)"
    exit 1
fi
echo "all steps passed: $STEPS (logs in $OUT)"
