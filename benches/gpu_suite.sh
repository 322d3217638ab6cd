#!/usr/bin/env bash
# Runs nil's GPU benchmarks on a machine without network access: installs the carried wheel of nil
# and its small dependencies (built and downloaded beside the checkout into .device/), then runs each
# benchmark and writes its JSON summary to $OUT (default ./gpu-out).
#   bash benches/gpu_suite.sh [capture] [train] [memory] [tests] [pack] [repro] [symbolic] [sink] [analyze]
# sink: the issue-14 streaming case alone (GPT-2-small capture alone vs streaming to ShardWriter,
# staged and staging=0, vs a memmap sink; ~1 min). analyze: `nil analyze` cpu vs cuda on a 2 GB
# float16 capture under /tmp, against disk and page-cache reads (ANALYZE_GB overrides the size).
# repro: one time-limited chunk of the issue-17 reproduction sweep (byte-level gpt, nine budgets,
# twelve depths, METHOD 4.4 protocol) in $REPRO_DIR (default repro/ntp, carried in and out between
# calls); REPRO_SECONDS (default 420) bounds its training, REPRO_SEEDS (default 1) and
# REPRO_PRECISION (default bf16; part of every run's identity: keep it across calls) set the sweep;
# REPRO_CORPUS=site reads the installed packages' *.py files (the first 400 MB in sorted order,
# 5,078 test windows as the reference's 1.3 MB test split) instead of the stdlib; another value is
# taken as a directory of *.py files. Choose it before the first chunk and keep it.
# It copies runs.parquet and sweep.json to $OUT; carry them back into $REPRO_DIR for the next chunk.
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
SITE=$(pwd)/.device/site
shopt -s nullglob
wheels=(.device/wheels/*.whl .device/dist/*.whl)
shopt -u nullglob
python3 -m pip install -q --no-deps --no-index --target "$SITE" "${wheels[@]}" 2>&1 | tail -2
cp "$SITE"/nil/_core*.so python/nil/  # benches and tests put python/ first on sys.path
export PYTHONPATH=$(pwd)/python:$SITE
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, nil; print('torch', torch.__version__, 'nil', nil.__version__, 'threads', nil._core.num_threads())" | tee -a "$OUT/gpu.txt"
cases=${*:-capture train memory tests}
for c in $cases; do
  start=$(date +%s)
  case $c in
    capture) python3 benches/bench_capture_gpu.py --out "$OUT/capture.json" > "$OUT/capture.log" 2>&1 ;;
    train) python3 benches/bench_train_gpu.py --out "$OUT/train.json" > "$OUT/train.log" 2>&1 ;;
    memory) python3 benches/bench_superposition_memory.py > "$OUT/memory.json" 2> "$OUT/memory.log" ;;
    scaling) python3 benches/bench_scaling.py --gb 4 --threads 1,2,4,8,16 --ray-cpus "" --dir /tmp --json "$OUT/scaling.json" > "$OUT/scaling.log" 2>&1 ;;
    disk) { dd if=/dev/zero of=/tmp/nil-dd bs=1M count=2048 conv=fsync 2>&1 | tail -1; rm -f /tmp/nil-dd; } > "$OUT/disk.txt" ;;
    tests) python3 -m pytest -q -p no:cacheprovider tests/test_capture_cuda.py tests/test_shards_roundtrip.py tests/test_pack_cuda.py tests/test_shards_device_reduce.py -m gpu > "$OUT/tests.log" 2>&1 ;;
    sink) python3 benches/bench_capture_gpu.py --cases gpt2 --out "$OUT/capture_sink.json" > "$OUT/capture_sink.log" 2>&1; tail -1 "$OUT/capture_sink.log" ;;
    analyze) python3 benches/bench_analyze_gpu.py --gb "${ANALYZE_GB:-2}" --dir /tmp --out "$OUT/analyze.json" > "$OUT/analyze.log" 2>&1; tail -1 "$OUT/analyze.log" ;;
    pack) python3 benches/bench_pack_gpu.py --out "$OUT/pack.json" > "$OUT/pack.log" 2>&1 ;;
    symbolic) python3 benches/bench_symbolic.py --only forwards --device cuda --out "$OUT/symbolic.json" > "$OUT/symbolic.log" 2>&1 ;;
    repro)
      R=${REPRO_DIR:-repro/ntp}
      EXTRA=()
      if [ -n "${REPRO_CORPUS:-}" ]; then
        C=$REPRO_CORPUS
        [ "$C" = site ] && C=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
        EXTRA=(--task-arg "corpus=$C" --task-arg "corpus_glob=*.py" --task-arg max_bytes=400000000 --task-arg test_windows=5078)
      fi
      PYTHONUNBUFFERED=1 python3 -m nil sweep --family gpt --task bytes --budgets 0.3M,0.6M,1M,1.3M,1.6M,2M,2.3M,2.7M,3M \
        --depths 1,2,3,4,5,6,8,10,12,16,20,24 --seeds "${REPRO_SEEDS:-1}" --data-ratio 60 --train-preset reference-ntp \
        --precision "${REPRO_PRECISION:-bf16}" ${EXTRA[@]+"${EXTRA[@]}"} --out "$R" --time-limit "${REPRO_SECONDS:-420}" ${REPRO_RUNS_PER_GPU:+--runs-per-gpu $REPRO_RUNS_PER_GPU} \
        --no-progress > "$OUT/repro.log" 2>&1
      cp "$R/runs.parquet" "$R/sweep.json" "$OUT/" 2>/dev/null ;;
  esac
  echo "$c exited $? after $(( $(date +%s) - start )) s" | tee -a "$OUT/gpu.txt"
done
