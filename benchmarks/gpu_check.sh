#!/usr/bin/env bash
# The dictionaries' GPU check, one prepared script for a lent GPU machine: the solvers' iteration
# against its floors (kernels issued one by one, replayed as CUDA graphs; the Gram product
# alone), the cupy tests, where one fit's time goes (its FISTA calls and functions), then each
# size fitted on the GPU and on the CPU side by side with what `backend: auto` chooses (one
# table), the longest on the GPU alone; then the sorter's DB-KSVD on both. About 8 minutes of
# device time at the defaults.
#
#   benchmarks/gpu_check.sh --wheels   # here: the wheels the GPU image lacks, into wheels/
#   benchmarks/gpu_check.sh            # there, with the device tool's carry ["wheels"]
#
# GPU_CHECK_PARTS (default "iterations tests profile compare dbksvd") picks the parts;
# GPU_CHECK_ON (default "cpu gpu") the backends of the iteration table;
# GPU_CHECK_PROFILE (default "4,20,10": the fits and scoring profiled by benchmarks/gpu_profile.py
# for at most GPU_CHECK_LIMIT_S, a size ending in :tf32 with TensorFloat-32 products;
# GPU_CHECK_TOP > 0 adds cProfile's top functions), GPU_CHECK_TESTS_S (default 150: the cupy tests' limit),
# GPU_CHECK_SIZES (default "4,5,1 4,20,10 16,200,10"), GPU_CHECK_GPU_ONLY (default
# "16,200,60") and GPU_CHECK_LIMIT_S (seconds per fit, default 100: a fit past it shows
# "> 100 s") bound the run. PYTHON picks the interpreter (default python3, the image's, which
# has cupy). Then DB-KSVD on GPU_CHECK_DBKSVD_SNIPPETS generated tetrode snippets (default a
# million) on GPU_CHECK_DBKSVD_ON (default "gpu cpu"), each at most GPU_CHECK_LIMIT_S.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SIZES=${GPU_CHECK_SIZES-"4,5,1 4,20,10 16,200,10"}
GPU_ONLY=${GPU_CHECK_GPU_ONLY-"16,200,60"}
LIMIT_S=${GPU_CHECK_LIMIT_S:-100}
export PYTHONUNBUFFERED=1
SNIPPETS=${GPU_CHECK_DBKSVD_SNIPPETS:-1000000}
DBKSVD_ON=${GPU_CHECK_DBKSVD_ON-"gpu cpu"}
PROFILE=${GPU_CHECK_PROFILE-"4,20,10"}
PARTS=" ${GPU_CHECK_PARTS:-iterations tests profile compare dbksvd} "
TESTS_S=${GPU_CHECK_TESTS_S:-150}
# what neurodict's dictionaries and their tests import beyond the GPU image's packages
WHEELS=(asciitree==1.0.0 Deprecated==1.3.1 jsonschema==4.26.0 jsonschema-specifications==2025.9.1
  neo==0.14.6 numcodecs==0.15.2 probeinterface==0.4.2 quantities==0.16.4 referencing==0.37.0
  rpds-py==2026.9.1 spikeinterface==0.105.3 zarr==2.18.7)

if [[ ${1:-} == --wheels ]]; then
  "$PY" -m pip download --quiet --dest wheels --no-deps --only-binary=:all: \
    --python-version 3.12 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    "${WHEELS[@]}"
  echo "wheels/: $(ls wheels | wc -l) wheels, $(du -sh wheels | cut -f1)"
  exit 0
fi
if [[ -d wheels ]]; then
  site=$(mktemp -d)
  "$PY" -m pip install --quiet --no-deps --no-index --target "$site" wheels/*.whl
  export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

"$PY" - <<'PY'
import os, numpy
try:
    import cupy
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    gpu = f"{name}, cupy {cupy.__version__}"
except Exception as exc:  # reported, not fatal: the CPU columns still run
    gpu = f"none ({type(exc).__name__}: {exc})"
print(f"## machine: {os.cpu_count()} CPU cores, numpy {numpy.__version__}; GPU: {gpu}")
PY
if [[ $PARTS == *" iterations "* ]]; then
  echo "## one coefficient iteration against its floors (benchmarks/gpu_profile.py --iterations)"
  "$PY" benchmarks/gpu_profile.py --iterations --on ${GPU_CHECK_ON:-cpu gpu} || true
fi
if [[ $PARTS == *" tests "* ]]; then
  echo "## cupy tests (numpy and cupy backends, the same tests)"
  timeout "$TESTS_S" "$PY" -m pytest -q -p no:cacheprovider -o addopts="" -k "cupy or gpu" --tb=line \
    tests/test_backend.py tests/lfpdict/test_model.py tests/lfpdict/test_cost.py \
    tests/sort/test_dbksvd.py 2>&1 | tail -15 || true
fi
if [[ $PARTS == *" profile "* && -n $PROFILE ]]; then
  for size in $PROFILE; do
    tf32=$([[ $size == *:tf32 ]] && echo --tf32 || true)
    echo "## where a fit's time goes on the GPU (benchmarks/gpu_profile.py --fit ${size%:tf32} $tf32)"
    "$PY" benchmarks/gpu_profile.py --fit "${size%:tf32}" --backend gpu --limit-s "$LIMIT_S" \
      --top "${GPU_CHECK_TOP:-0}" $tf32 || true
  done
fi
if [[ $PARTS == *" compare "* ]]; then
  echo "## dictionaries: GPU, CPU and what backend auto chooses (benchmarks/lfpdict.py --compare)"
  # shellcheck disable=SC2086  # the sizes are separate arguments
  "$PY" benchmarks/lfpdict.py --compare --sizes $SIZES ${GPU_ONLY:+--gpu-only-sizes $GPU_ONLY} \
    --limit-s "$LIMIT_S"
fi
if [[ $PARTS == *" dbksvd "* && -n $DBKSVD_ON ]]; then
  echo "## DB-KSVD on GPU and CPU (benchmarks/dbksvd.py, $SNIPPETS snippets)"
  for backend in $DBKSVD_ON; do
    timeout "$LIMIT_S" "$PY" benchmarks/dbksvd.py --snippets "$SNIPPETS" --methods dbksvd \
      --backend "$backend" 2>/dev/null | tail -1 || echo "| dbksvd $backend | > $LIMIT_S s |"
  done
fi
