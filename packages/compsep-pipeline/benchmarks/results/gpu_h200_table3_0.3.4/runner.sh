#!/usr/bin/env bash
# 2xH200: the six Table III regions in two chains of three, one chain per GPU (pinned to 16
# cores), each chain on its own compilation cache (as one H200 running its regions in turn).
# OPTS: options of gpu_table3_throughput.py; the screening run had
# OPTS="--grid gtol=0.01 --grid rtol=1e-13", the default run none; the default run also had
# CHAIN0="GAL020_L GAL060-GAL040_L GAL060-GAL040_U" CHAIN1="GAL020_U GAL040-GAL020_L GAL040-GAL020_U".
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
P=$PWD/packages
export PYTHONPATH=/tmp/site:$P/compsep-pipeline/src:$P/sphere-kmeans/src:$P/spec-likelihood/src:$P/grid-dispatch/src:$P/bb-residuals/src
T="python3 $P/compsep-pipeline/benchmarks/gpu_table3_throughput.py --sky .gpu3/sky_c1d1s1_ns64.npz --cls .gpu3/camb_templates.npz --mask-file .gpu4/GAL_PlanckMasks_64.npz ${OPTS:-}"
nvidia-smi --query-gpu=name,memory.total --format=csv > $OUT/gpu.txt
chain() {  # gpu regions...
  g=$1; shift; C0=$((g*16)); C1=$((C0+15))
  for R in "$@"; do
    d=$OUT/c$g-$R; mkdir -p $d
    T0=$(date +%s)
    OMP_NUM_THREADS=16 XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=16" CUDA_VISIBLE_DEVICES=$g timeout ${TPART:-260} taskset -c $C0-$C1 $T --region $R --cache /tmp/jaxcache$g --out $d > $d/log.txt 2>&1
    echo "rc=$? wall $(( $(date +%s)-T0 ))" >> $d/log.txt
    rm -rf $d/grid
  done
}
chain 0 ${CHAIN0:-GAL020_U GAL020_L GAL040-GAL020_U} &
chain 1 ${CHAIN1:-GAL060-GAL040_L GAL040-GAL020_L GAL060-GAL040_U} &
wait
for d in $OUT/c*; do echo "== $d"; grep -h '"n_pix\|"compile_s\|"patch_s\|"fit_run_s\|"other_s\|"kmeans_s\|"projection_region_s\|"projection_table3_h\|"selected\|"n_failed\|rc=' $d/log.txt; grep -A3 '"selected"' $d/log.txt | tr -d ' \n'; echo; done
du -sh /tmp/jaxcache*
cd $OUT && tar czf results.tgz c* gpu.txt && rm -rf c*
