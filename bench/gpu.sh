#!/usr/bin/env bash
# GPU benchmarks: compute efficiency (1), input pipelines (2) and serving (5)
# with float32 / mixed_float16 and XLA off / on, on the machine's first GPU.
# A few minutes on one modern GPU; results go to bench/results/gpu/ beside
# the CPU ones (each as JSON, plus gpu/latest.json merging them).
#   pip install -e ".[gpu,bench]" && bash bench/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
OUT=bench/results/gpu
mkdir -p "$OUT"
export TF_CPP_MIN_LOG_LEVEL=2
$PY -c "import tensorflow as tf, sys; g = tf.config.list_physical_devices('GPU'); print('GPUs:', g); sys.exit(0 if g else 'no GPU visible to TensorFlow')"
for precision in float32 mixed_float16; do
  for xla in "" "--xla"; do
    tag=${precision}${xla:+_xla}
    $PY bench/compute.py --precision "$precision" $xla --output "$OUT/compute_$tag.json"
    $PY bench/retrieval_pipeline.py --precision "$precision" $xla --output "$OUT/retrieval_pipeline_$tag.json"
    $PY bench/video_pipeline.py --precision "$precision" $xla --output "$OUT/video_pipeline_$tag.json"
  done
done
$PY bench/serving.py --output "$OUT/serving.json"
$PY - <<'PY'
import glob, json, os
from bench._common import machine, print_results
results = []
for path in sorted(glob.glob("bench/results/gpu/*.json")):
    if path.endswith("latest.json"):
        continue
    with open(path) as f:
        report = json.load(f)
    name = os.path.basename(path)[:-5]
    results += [dict(r, benchmark=name, settings=report.get("settings")) for r in report["results"]]
with open("bench/results/gpu/latest.json", "w") as f:
    json.dump({"machine": machine(), "results": results}, f, indent=2)
print_results(results)
PY
