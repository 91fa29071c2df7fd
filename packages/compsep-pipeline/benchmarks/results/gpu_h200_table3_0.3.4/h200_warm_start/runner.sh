#!/usr/bin/env bash
# one H200: warm start on/off, stride-10 Table III sample (default tolerances), sharing a compilation cache
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
P=$PWD/packages
export PYTHONPATH=/tmp/site:$P/compsep-pipeline/src:$P/sphere-kmeans/src:$P/spec-likelihood/src:$P/grid-dispatch/src:$P/bb-residuals/src
T="python3 $P/compsep-pipeline/benchmarks/gpu_table3_throughput.py --sky .gpu3/sky_c1d1s1_ns64.npz --cls .gpu3/camb_templates.npz --mask-file .gpu4/GAL_PlanckMasks_64.npz --stride 10 --offset 300 --cache /tmp/jaxcache"
nvidia-smi --query-gpu=name,memory.total --format=csv > $OUT/gpu.txt
i=0
for V in "--region GAL020_L --grid warm_start=false" "--region GAL020_L" "--region GAL020_U --grid warm_start=false" "--region GAL020_U"; do
  d=$OUT/v$i; mkdir -p $d; echo "$V" > $d/variant.txt
  T0=$(date +%s); timeout ${TPART:-150} $T $V --out $d > $d/log.txt 2>&1; echo "rc=$? wall $(( $(date +%s)-T0 ))" >> $d/log.txt
  rm -rf $d/grid
  echo "== $V"; grep -h '"compile_s\|"fit_run_s\|"other_s\|"kmeans_s\|"warm_start_s\|"projection_region_s\|"n_failed\|rc=' $d/log.txt; grep -A3 '"selected"' $d/log.txt | tr -d ' \n'; grep -A3 '"warm_start":' $d/log.txt | tr -d ' \n'; echo
  i=$((i+1))
done
