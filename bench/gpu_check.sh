#!/usr/bin/env bash
# The one prepared check for a GPU machine (one H100/H200, under 8 minutes): every CUDA test, then the
# trainer-path benchmark next to transformers' ModernBertForMaskedLM, then the model-level throughput
# comparison with a profile of the FSDP2 path. Everything lands in the folder given as the argument:
#   env.txt, gpu_tests.log, gpu_trainer.{json,md} (+ gpu_trainer.log), train_throughput_gpu.{json,md,_profile.txt}
#   (+ bench.log); gpu_trainer.{json,md} are also copied to bench/results/ of this checkout.
# Run from the repository root:  bash bench/gpu_check.sh /tmp/gpu-check      (or OUT=/tmp/gpu-check)
# Without CUDA it says so and exits 2; each part has its own time limit, so the others still report.
set -u -o pipefail
OUT=${1:-${OUT:-/tmp/gpu-check}}
PY=${PYTHON:-python3}
TEST_LIMIT=${TEST_LIMIT:-110}
TRAINER_LIMIT=${TRAINER_LIMIT:-230}
BENCH_LIMIT=${BENCH_LIMIT:-120}
mkdir -p "$OUT"
export PYTHONPATH=.:${PYTHONPATH:-} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/inductor-cache}
started=$(date +%s)

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
GPU_TESTS="tests/training/test_attention_gpu.py tests/training/test_trainer_gpu.py"
echo "== CUDA tests: $GPU_TESTS (limit ${TEST_LIMIT}s)"
if $PY -m pytest --version >/dev/null 2>&1; then
  timeout "$TEST_LIMIT" $PY -m pytest $GPU_TESTS -v -rfEs --show-capture=no -p no:cacheprovider \
    2>&1 | tee "$OUT/gpu_tests.log" || status=1
else
  # No pytest on the machine: call every test function of the GPU modules directly, parameters by hand.
  timeout "$TEST_LIMIT" $PY - <<'EOF' 2>&1 | tee "$OUT/gpu_tests.log" || status=1
import traceback
import tests.training.test_attention_gpu as attention
import tests.training.test_trainer_gpu as trainer
cases = [(attention, "test_flex_equals_sdpa_forward_and_backward", ()),
         (attention, "test_packed_equals_each_document_alone_on_gpu", ("flex",)),
         (attention, "test_packed_equals_each_document_alone_on_gpu", ("sdpa",)),
         (attention, "test_per_document_gradients_match_packed_flex", ()),
         (attention, "test_bf16_compiled_flex_training_step_is_finite", ()),
         (trainer, "test_step_runs_without_a_device_sync", ("flex",)),
         (trainer, "test_step_runs_without_a_device_sync", ("sdpa",)),
         (trainer, "test_stableadamw_on_cuda_matches_optimis_loop", ())]
failed = 0
for module, name, params in cases:
    try:
        getattr(module, name)(*params)
        print("PASSED", module.__name__, name, params)
    except Exception:
        failed += 1
        print("FAILED", module.__name__, name, params)
        traceback.print_exc()
raise SystemExit(1 if failed else 0)
EOF
fi

echo "== trainer path vs transformers, base at 1024 x 32 and 8192 x 4, bf16 (limit ${TRAINER_LIMIT}s)"
timeout "$TRAINER_LIMIT" $PY bench/gpu_trainer_bench.py --device cuda --out "$OUT/gpu_trainer" \
  2>&1 | tee "$OUT/gpu_trainer.log" || status=1
if [ -f "$OUT/gpu_trainer.json" ]; then
  mkdir -p bench/results && cp "$OUT/gpu_trainer.json" "$OUT/gpu_trainer.md" bench/results/ || true
fi

echo "== model-level throughput: transformers packed, ours flex plain and FSDP2, base 32 x 1024 (limit ${BENCH_LIMIT}s)"
timeout "$BENCH_LIMIT" $PY bench/train_throughput.py --device cuda --modes hf_packed_nomask,ours_flex,ours_fsdp \
  --steps 6 --warmup 3 --profile ours_fsdp --out "$OUT/train_throughput_gpu" 2>&1 | tee "$OUT/bench.log" || status=1
echo "gpu_check: done in $(( $(date +%s) - started ))s, status $status"
exit $status
