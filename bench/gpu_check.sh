#!/usr/bin/env bash
# The one prepared check for a GPU machine (about 7 minutes at most): the CUDA attention tests, then the
# base-size training throughput benchmark (with a profile of the FSDP2 path). Everything lands in $OUT:
#   env.txt, gpu_tests.log, bench.log, train_throughput_gpu.{json,md}, train_throughput_gpu_profile.txt
# Run from the repository root:  OUT=/tmp/gpu-check bash bench/gpu_check.sh
# Without CUDA it says so and exits 2; each part has its own time limit so the other still reports.
set -u -o pipefail
OUT=${OUT:-/tmp/gpu-check}
PY=${PYTHON:-python3}
TEST_LIMIT=${TEST_LIMIT:-170}
BENCH_LIMIT=${BENCH_LIMIT:-290}
mkdir -p "$OUT"
export PYTHONPATH=.:${PYTHONPATH:-} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/inductor-cache}

{
  date -u
  nvidia-smi || echo "nvidia-smi: not available"
  $PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__,
'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

if ! $PY -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: torch sees no CUDA device here; nothing to check (the CPU suite covers the rest)" | tee -a "$OUT/env.txt"
  exit 2
fi

status=0
echo "== CUDA attention tests (limit ${TEST_LIMIT}s)"
if $PY -m pytest --version >/dev/null 2>&1; then
  timeout "$TEST_LIMIT" $PY -m pytest tests/training/test_attention_gpu.py -v -rfEs --show-capture=no -p no:cacheprovider \
    2>&1 | tee "$OUT/gpu_tests.log" || status=1
else
  # No pytest on the machine: call the test functions directly (parametrised one by hand).
  timeout "$TEST_LIMIT" $PY - <<'EOF' 2>&1 | tee "$OUT/gpu_tests.log" || status=1
import traceback
import tests.training.test_attention_gpu as t
cases = [("test_flex_equals_sdpa_forward_and_backward", ()),
         ("test_packed_equals_each_document_alone_on_gpu", ("flex",)),
         ("test_packed_equals_each_document_alone_on_gpu", ("sdpa",)),
         ("test_per_document_gradients_match_packed_flex", ()),
         ("test_bf16_compiled_flex_training_step_is_finite", ())]
failed = 0
for name, params in cases:
    try:
        getattr(t, name)(*params)
        print("PASSED", name, params)
    except Exception:
        failed += 1
        print("FAILED", name, params)
        traceback.print_exc()
raise SystemExit(1 if failed else 0)
EOF
fi

echo "== training throughput, base, 32 x 1024, bf16 (limit ${BENCH_LIMIT}s)"
timeout "$BENCH_LIMIT" $PY bench/train_throughput.py --device cuda --profile ours_fsdp \
  --out "$OUT/train_throughput_gpu" 2>&1 | tee "$OUT/bench.log" || status=1
echo "gpu_check: done, status $status"
exit $status
