#!/usr/bin/env bash
# The GPU checks and figures of equivtest in one call, for a lent GPU machine (docs/performance.md,
# "On a GPU"). Here, first:
#     echo /.gpu/ >> .git/info/exclude
#     python benchmarks/minilm_slice.py pack .gpu/minilm      # 36 MiB: MiniLM to layer 3, for the capture
# then on the machine, carrying .gpu:   bash benchmarks/device_check.sh [STEP ...]   (default: every step)
# Each step has its own time limit and writes under $OUT (or ./device-out); a failed step does not stop the
# others. The machine's own python3 (with CUDA torch) runs the checkout from PYTHONPATH; datafold, which the
# machine's numpy and scikit-learn cannot import, is only needed by the diffusion maps, which no step runs.
set -u
OUT=${OUT:-device-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH="$PWD:$PWD/thesis${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
STEPS=" ${*:-tests capture_cuda maps_cuda eigh widths_cuda capture_cpu} "
step() {  # step NAME SECONDS COMMAND...: run it if asked for, log it, say how it ended
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    [[ $STEPS == *" $name "* ]] || return 0
    echo "== $name"
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    tail -n 14 "$OUT/$name.log"
    echo "== $name: exit $rc after $((SECONDS - start)) s"
}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
$PY -c "import torch, numpy, scipy, sklearn, transformers as t; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
'numpy', numpy.__version__, 'scipy', scipy.__version__, 'sklearn', sklearn.__version__, 'transformers', t.__version__)"
nproc
# 1. the tests that compare a CUDA result with the CPU one (they skip where there is no GPU); the stitching
#    one fits diffusion maps (datafold), so it cannot run there
step tests 120 $PY -m pytest -p no:cacheprovider -q -rs -k "cuda and not test_cuda_device_matches_cpu" \
    tests/test_lowrank_geometry.py tests/test_maps_device.py tests/test_scale_and_device.py tests/test_stitch.py \
    tests/test_hf_batching.py
# 2. batched capture of 1,000 Pang-Lee sentences by MiniLM to layer 3, on the GPU
[[ $STEPS == *" capture_"* ]] && { $PY benchmarks/minilm_slice.py unpack .gpu/minilm /tmp/minilm4 >/dev/null 2>&1 || echo "unpack failed"; }
step capture_cuda 120 $PY benchmarks/batched_capture.py --device cuda --model-dir /tmp/minilm4 --repeats 3 \
    --out "$OUT/capture_cuda.json"
# 3. the rigid maps: numpy (this machine's CPUs) against torch on the GPU
step maps_cuda 120 $PY benchmarks/maps.py --device cuda --rows 20000 --features 768 --repeats 3 \
    --out "$OUT/maps_cuda.json"
# 4. a batch of M x M eigenproblems on the CPU and the GPU (where the low-rank geometry solves them)
step eigh 60 $PY benchmarks/eigh_device.py --device cuda
# 5. the low-rank geometry: CPU against GPU, factors and distances, N = 2,000, M = 64
step widths_cuda 200 $PY benchmarks/widths.py --widths 768,1536,3072 --device cuda --no-dense \
    --out "$OUT/widths_cuda.json"
# 6. the same capture on this machine's CPUs (more cores than the 2 of CI)
step capture_cpu 90 $PY benchmarks/batched_capture.py --model-dir /tmp/minilm4 --repeats 1 \
    --out "$OUT/capture_cpu.json"
