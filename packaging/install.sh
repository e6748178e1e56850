#!/usr/bin/env bash
# Install chatapp (and, with --test, its test extras) into the current Python.
#
# llama-cpp-python ships only as source and compiles llama.cpp (about 8 minutes on 2
# cores). We build its wheel once into ~/.cache/chatapp-wheels and reuse it.
# CMAKE_ARGS picks the backend, e.g.:
#   CMAKE_ARGS="-DGGML_CUDA=on"    NVIDIA GPUs (needs the CUDA toolkit)
#   CMAKE_ARGS="-DGGML_METAL=on"   Apple Silicon (the default on macOS)
#   CMAKE_ARGS="-DGGML_VULKAN=on"  AMD/Intel/NVIDIA through Vulkan
# With no CMAKE_ARGS we build for this CPU, but without Intel AMX kernels: they crash on
# machines that report AMX without granting it (VMs and sandboxes), and gain little for
# the small batch sizes of a chat.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_CPP_VERSION="${LLAMA_CPP_VERSION:-0.3.36}"
WHEELS="${CHATAPP_WHEEL_CACHE:-$HOME/.cache/chatapp-wheels}"
PY="${PYTHON:-python3}"
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"

if ! "$PY" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_CPP_VERSION')" 2>/dev/null \
   || [ ! -f "$WHEELS/.installed-$LLAMA_CPP_VERSION" ]; then
  mkdir -p "$WHEELS"
  wheel=$(ls "$WHEELS"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    echo "Building llama-cpp-python $LLAMA_CPP_VERSION (compiles llama.cpp; several minutes)…"
    if [ -z "${CMAKE_ARGS:-}" ] && [ "$(uname -m)" = "x86_64" ]; then
      export CMAKE_ARGS="-DCMAKE_C_FLAGS='$NO_AMX' -DCMAKE_CXX_FLAGS='$NO_AMX'"
    fi
    "$PY" -m pip wheel --no-deps --no-cache-dir "llama-cpp-python==$LLAMA_CPP_VERSION" -w "$WHEELS"
    wheel=$(ls "$WHEELS"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl | head -n1)
  fi
  "$PY" -m pip install --force-reinstall --no-deps "$wheel"
  "$PY" -m pip install "llama-cpp-python==$LLAMA_CPP_VERSION"  # its own dependencies
  touch "$WHEELS/.installed-$LLAMA_CPP_VERSION"
fi

if [ "${1:-}" = "--test" ]; then
  "$PY" -m pip install -e ".[test]"
  "$PY" tests/fetch_models.py
else
  "$PY" -m pip install -e .
fi
