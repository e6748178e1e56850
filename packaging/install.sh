#!/usr/bin/env bash
# Install chatapp from this checkout, into a virtual environment of its own.
#
#   bash packaging/install.sh          the app: a venv in ~/.local/share/chatapp/venv,
#                                      `chatapp` in ~/.local/bin, a desktop launcher
#   bash packaging/install.sh --test   for development: a venv in .venv (here) with the
#                                      test extras and the test models; then
#                                      .venv/bin/python -m pytest
#
# Always a venv, whichever Python: Debian 12 / Ubuntu 23.04 and later refuse pip on the
# system Python (PEP 668, "externally-managed-environment"), and a venv keeps the app's
# dependencies out of anyone else's way on every system (uninstall: delete it). The
# Python it is made from: $PYTHON, else python3. A Python that is itself a venv (one you
# activated) is used as it is. CHATAPP_VENV names another place for the venv;
# CHATAPP_BIN_DIR another place for the `chatapp` command (default ~/.local/bin).
# The install is editable: it runs this checkout (keep it where it is).
#
# llama-cpp-python ships only as source and compiles llama.cpp (about 8 minutes on 2
# cores). We build its wheel once into ~/.cache/chatapp-wheels and reuse it.
# CMAKE_ARGS picks the backend, e.g.:
#   CMAKE_ARGS="-DGGML_CUDA=on"    NVIDIA GPUs (needs the CUDA toolkit)
#   CMAKE_ARGS="-DGGML_METAL=on"   Apple Silicon (the default on macOS)
#   CMAKE_ARGS="-DGGML_VULKAN=on"  AMD/Intel/NVIDIA through Vulkan
# On x86_64 the AMX-off compiler flags below are appended to CMAKE_ARGS (yours are kept):
# llama.cpp's Intel AMX kernels crash on machines that report AMX without granting it
# (VMs and sandboxes), and gain little for the small batch sizes of a chat; a GPU build
# compiles the CPU backend too. CMAKE_ARGS that set CMAKE_C_FLAGS or CMAKE_CXX_FLAGS
# themselves are used as they are.
# Each CMAKE_ARGS has a wheel of its own in the cache (no CMAKE_ARGS: the cache folder
# itself; others: a subfolder named by a hash of them), and the venv records which one it
# has: running this again with other CMAKE_ARGS builds (or reuses) that wheel and installs
# it in place of the old one.
#   bash packaging/install.sh --print-build   says the CMAKE_ARGS and wheel folder it
#                                             would use, and changes nothing
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

LLAMA_CPP_VERSION="${LLAMA_CPP_VERSION:-0.3.36}"
WHEELS="${CHATAPP_WHEEL_CACHE:-$HOME/.cache/chatapp-wheels}"
BASE="${PYTHON:-python3}"
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
BIN="${CHATAPP_BIN_DIR:-$HOME/.local/bin}"
test_install=0
print_build=0
case "${1:-}" in
  --test) test_install=1 ;;
  --print-build) print_build=1 ;;
esac

fail() { echo "install.sh: $*" >&2; exit 1; }
command -v "$BASE" >/dev/null || fail "no $BASE: install Python 3.10 or later (or set PYTHON)."
"$BASE" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || fail "$BASE is Python $("$BASE" -c 'import platform; print(platform.python_version())'); chatapp needs 3.10 or later."

# -- which llama.cpp build: CMAKE_ARGS, and where its wheel is cached ----------------------
user_cmake="${CMAKE_ARGS:-}"
cmake_args="$user_cmake"
if [ "$(uname -m)" = "x86_64" ]; then
  case "$user_cmake" in
    *CMAKE_C_FLAGS*|*CMAKE_CXX_FLAGS*) ;;  # the user's own compiler flags: as they are
    *) cmake_args="${user_cmake:+$user_cmake }-DCMAKE_C_FLAGS='$NO_AMX' -DCMAKE_CXX_FLAGS='$NO_AMX'" ;;
  esac
fi
if [ -z "$user_cmake" ]; then
  flavour="default"
  wheel_dir="$WHEELS"  # where the CPU wheel always was: an existing one is reused
else
  flavour="cmake-$("$BASE" -c 'import hashlib, sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest()[:12])' "$cmake_args")"
  wheel_dir="$WHEELS/$flavour"
fi
if [ "$print_build" = 1 ]; then
  echo "CMAKE_ARGS=$cmake_args"
  echo "wheels: $wheel_dir"
  echo "build: llama-cpp-python $LLAMA_CPP_VERSION $flavour"
  exit 0
fi

# -- the virtual environment --------------------------------------------------------------
if "$BASE" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; then
  PY="$BASE"  # already a venv (activated or named): install into it
  venv=$("$PY" -c 'import sys; print(sys.prefix)')
else
  if [ "$test_install" = 1 ]; then venv="${CHATAPP_VENV:-$repo/.venv}"; else venv="${CHATAPP_VENV:-$DATA/chatapp/venv}"; fi
  if [ ! -x "$venv/bin/python" ]; then
    echo "Creating a virtual environment in $venv ($("$BASE" --version 2>&1))…"
    if ! "$BASE" -m venv "$venv"; then
      rm -rf "$venv"
      fail "could not create a virtual environment with $BASE. On Debian or Ubuntu: sudo apt install python3-venv, then run this again."
    fi
  fi
  PY="$venv/bin/python"
fi
pip() { "$PY" -m pip --disable-pip-version-check "$@"; }

# -- llama-cpp-python: the cached wheel of this build, or build it once --------------------
# The venv records the build it holds; one installed before this record was a default build.
stamp="$venv/.chatapp-llama-build"
want="$LLAMA_CPP_VERSION $flavour"
have=$(cat "$stamp" 2>/dev/null || echo "$LLAMA_CPP_VERSION default")
if ! "$PY" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_CPP_VERSION')" 2>/dev/null \
   || [ "$have" != "$want" ]; then
  mkdir -p "$wheel_dir"
  # pip picks this build's cached wheel, if there is one that fits this Python
  if ! pip install -q --force-reinstall --no-deps --no-index --find-links "$wheel_dir" "llama-cpp-python==$LLAMA_CPP_VERSION" 2>/dev/null; then
    echo "Building llama-cpp-python $LLAMA_CPP_VERSION (compiles llama.cpp; several minutes)…"
    echo "CMAKE_ARGS=$cmake_args"
    CMAKE_ARGS="$cmake_args" pip wheel --no-deps --no-cache-dir "llama-cpp-python==$LLAMA_CPP_VERSION" -w "$wheel_dir"
    pip install --force-reinstall --no-deps --no-index --find-links "$wheel_dir" "llama-cpp-python==$LLAMA_CPP_VERSION"
  fi
  pip install -q "llama-cpp-python==$LLAMA_CPP_VERSION"  # its own dependencies
  echo "$want" > "$stamp"
fi

if [ "$test_install" = 1 ]; then
  pip install -e ".[test]"
  "$PY" tests/fetch_models.py
  echo "chatapp and its tests are installed in $venv: run ${PY#"$repo"/} -m pytest"
  exit 0
fi
pip install -e .

# -- `chatapp` on the PATH, and a launcher for the desktop ---------------------------------
mkdir -p "$BIN"
cat > "$BIN/chatapp" <<EOF
#!/bin/sh
# chatapp, installed by $repo/packaging/install.sh into $venv
exec "$PY" -m chatapp "\$@"
EOF
chmod +x "$BIN/chatapp"
if [ "$(uname -s)" = "Linux" ]; then
  share="$DATA"
  install -D -m 644 packaging/io.github.chatapp.desktop "$share/applications/io.github.chatapp.desktop"
  sed -i "s|^Exec=chatapp|Exec=$BIN/chatapp|; s|^TryExec=chatapp|TryExec=$BIN/chatapp|" \
    "$share/applications/io.github.chatapp.desktop"
  install -D -m 644 packaging/io.github.chatapp.mime.xml "$share/mime/packages/io.github.chatapp.xml"
  install -D -m 644 resources/icons/chatapp.svg "$share/icons/hicolor/scalable/apps/io.github.chatapp.svg"
  for s in 16 22 24 32 48 64 128 256 512; do
    install -D -m 644 "resources/icons/chatapp-$s.png" "$share/icons/hicolor/${s}x${s}/apps/io.github.chatapp.png"
  done
  # the desktop's caches; each tool is optional, and says nothing unless asked
  for cmd in "update-desktop-database -q $share/applications" \
             "update-mime-database $share/mime" \
             "gtk-update-icon-cache -q -t $share/icons/hicolor"; do
    command -v "${cmd%% *}" >/dev/null && $cmd >/dev/null 2>&1 || true
  done
  echo "The launcher: $share/applications/io.github.chatapp.desktop"
fi
echo "chatapp is installed in $venv; the command: $BIN/chatapp"
case ":$PATH:" in
  *":$BIN:"*) ;;
  *) echo "($BIN is not on your PATH yet: run $BIN/chatapp, or log in again — most desktops add it once it exists)" ;;
esac
