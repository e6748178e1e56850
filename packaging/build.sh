#!/usr/bin/env bash
# Build the one-folder app with PyInstaller, then prove it works: run the frozen app's
# --self-test offscreen with a real model, and its command-line error paths.
#
#   bash packaging/build.sh [--model PATH.gguf]
#
# Needs the project installed (packaging/install.sh). The model defaults to the SmolLM2
# test model (tests/fetch_models.py fetches it). Output: dist/chatapp/ (see chatapp.spec).
set -euo pipefail
cd "$(dirname "$0")/.."
# the project's venv (packaging/install.sh --test) when there is one
if [ -x .venv/bin/python ]; then PY="${PYTHON:-.venv/bin/python}"; else PY="${PYTHON:-python3}"; fi
PYINSTALLER_VERSION="${PYINSTALLER_VERSION:-6.*}"

model=""
if [ "${1:-}" = "--model" ]; then model="$2"; fi
if [ -z "$model" ]; then
  model="$("$PY" tests/fetch_models.py)/SmolLM2-135M-Instruct.Q4_1.gguf"
fi

"$PY" -c "import PyInstaller" 2>/dev/null || "$PY" -m pip install -q "pyinstaller==$PYINSTALLER_VERSION"

start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/chatapp.spec
echo "build: $(( $(date +%s) - start )) s, bundle $(du -sh dist/chatapp | cut -f1)"

app=dist/chatapp/chatapp
if command -v appstreamcli >/dev/null; then
  appstreamcli validate --no-net dist/chatapp/share/metainfo/io.github.chatapp.metainfo.xml
fi
if command -v desktop-file-validate >/dev/null; then
  desktop-file-validate dist/chatapp/share/applications/io.github.chatapp.desktop
fi

# The frozen app, in a home of its own, as a user would run it.
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
export CHATAPP_HOME="$home"

"$app" --version
"$app" conversations >/dev/null  # a headless command, from the bundle
bash packaging/install-bundle.sh "$home/prefix" >/dev/null  # a user's install, then run it
"$home/prefix/bin/chatapp" --version >/dev/null
grep -q "^Exec=$home/prefix/bin/chatapp %f" "$home/prefix/share/applications/io.github.chatapp.desktop"
bash packaging/install-bundle.sh --uninstall "$home/prefix" >/dev/null
left=$(find "$home/prefix" -name "*chatapp*")  # the desktop's caches may stay
[ -z "$left" ] || { echo "uninstall left behind: $left"; exit 1; }
rc=0; "$app" frobnicate 2>"$home/err" || rc=$?
[ "$rc" = 2 ] && grep -q "unknown command 'frobnicate'" "$home/err" \
  || { echo "unknown command: exit $rc, $(cat "$home/err")"; exit 1; }
rc=0; env -u DISPLAY -u WAYLAND_DISPLAY -u QT_QPA_PLATFORM "$app" 2>"$home/err" || rc=$?
[ "$rc" = 1 ] && grep -q "no display" "$home/err" \
  || { echo "no display: exit $rc, $(cat "$home/err")"; exit 1; }

start=$(date +%s)
QT_QPA_PLATFORM=offscreen "$app" --self-test --model "$model"
echo "frozen self-test: $(( $(date +%s) - start )) s"
