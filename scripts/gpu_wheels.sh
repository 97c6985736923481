#!/usr/bin/env bash
# Wheels the GPU bench needs beyond what a bare GPU image has (torch, transformers 5, numpy,
# pillow, aiohttp, safetensors): the workers' own pins, at the versions constraints.txt holds,
# for CPython 3.12 on x86-64 Linux. They go to .whl/ (git-ignored), about 55 MB; on the GPU
# machine:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   PYTHONPATH=/tmp/site python3 bench/scoring_gpu.py --out "$OUT"
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
NAMES="transformers tokenizers huggingface_hub qwen-vl-utils av pydantic pydantic_core annotated-types typing-inspection"
mkdir -p .whl
for name in $NAMES; do
  pin=$(grep -i -E "^${name//[-_]/[-_]}==" constraints.txt)
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "$pin"
done
du -sh .whl
