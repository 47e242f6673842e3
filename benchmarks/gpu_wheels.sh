#!/usr/bin/env bash
# Download, here, the wheels asrtune needs on the lent GPU machine that its image lacks.
# The image has torch, transformers 5.17, peft, accelerate, numpy, pyarrow, pandas...
# (see the device tool's KINDS.md). The wheels, for Python 3.12 on x86-64, go to .whl/
# (kept out of git by .gitignore), 27 MB in all, and travel with `carry: [".whl"]`.
# Install them there with
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site:$PWD
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
WHEELS=(
    transformers==5.24.0  # the first with Qwen3-ASR and Parakeet TDT
    soundfile==0.14.0 cffi==2.0.0 pycparser==3.0
    soxr==1.1.0
    jiwer==4.0.0 rapidfuzz==3.14.6
    # Voxtral's tokenizer
    mistral-common==1.13.1 pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0
    typing-inspection==0.4.2 pydantic-extra-types==2.11.1 jsonschema==4.26.0
    referencing==0.37.0 rpds-py==0.30.0 jsonschema-specifications==2025.9.1
)
for wheel in "${WHEELS[@]}"; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 -d .whl "$wheel"
done
du -sh .whl
