#!/usr/bin/env bash
# One prepared script for a lent GPU machine: install, run the test suite on CUDA, benchmark in bf16.
#   bash bench/gpu_check.sh            (prints everything; results also land in $OUT when set)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python -c "import torch; print(torch.__version__, torch.cuda.is_available())" 2>/dev/null \
  || pip install -q torch
pip install -q -e '.[test]' 2>&1 | tail -2
python -c "import torch; assert torch.cuda.is_available(); print('cuda', torch.version.cuda)"
K2NB_TEST_DEVICE=cuda timeout 300 python -m pytest -q -x tests/test_engine_reference.py \
  tests/test_engine_generate.py tests/test_engine_loader.py 2>&1 | tail -5 | tee "$OUT/tests.txt"
timeout 200 python bench/engine_vs_transformers.py --device cuda --dtype bfloat16 --prompt 512 --new 128 \
  2>&1 | grep -v Writing | tee "$OUT/bench_bf16.txt"
