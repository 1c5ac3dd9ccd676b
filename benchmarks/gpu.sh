#!/usr/bin/env bash
# Run the fit benchmark's largest sizes on a GPU machine with no network.
# Such a machine has JAX with CUDA and NumPyro but not PyMC, PyTensor or ArviZ: download their
# wheels on a machine with network first, into .whl/ at the repository root:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl pymc==6.4.0 pytensor==3.3.8 arviz==1.3.0 \
#     arviz-base==1.3.1 arviz-stats==1.3.3 arviz-plots==1.3.2 h5netcdf==1.8.2 \
#     better-optimize==0.5.1 cachetools==6.2.6 xarray-einstats==0.11.0
# then run this script from the repository root there: bash benchmarks/gpu.sh [SIZES [OUT_CSV]]
# (LIMIT_MINUTES, default 30, bounds each fit: a device lease is short).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/bayespref-site .whl/*.whl
export PYTHONPATH="/tmp/bayespref-site:$PWD" PYTHONUNBUFFERED=1
python3 -c "import jax, numpyro, pymc; print('jax', jax.__version__, jax.devices(), 'numpyro', numpyro.__version__, 'pymc', pymc.__version__)"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
# The CPU skip list does not apply on a GPU: run every size with full NUTS.
python3 benchmarks/run.py --sizes "${1:-3000x117000,10000x332000}" --methods bayespref,approx,mle \
  --no-skip --limit-minutes "${LIMIT_MINUTES:-30}" --out "${2:-benchmarks/results/fit_gpu.csv}"
