#!/usr/bin/env bash
# Install the built bundle (dist/chatapp, from packaging/build.sh) for one user, as a
# desktop app: the program under PREFIX/lib/chatapp, `chatapp` in PREFIX/bin, and the
# launcher, icons, AppStream metainfo and .gguf MIME type under PREFIX/share.
#
#   bash packaging/install-bundle.sh [PREFIX]        # default: ~/.local
#   bash packaging/install-bundle.sh --uninstall [PREFIX]
set -euo pipefail
cd "$(dirname "$0")/.."
uninstall=0
if [ "${1:-}" = "--uninstall" ]; then uninstall=1; shift; fi
PREFIX="${1:-$HOME/.local}"
bundle=dist/chatapp

files=(applications/io.github.chatapp.desktop metainfo/io.github.chatapp.metainfo.xml
       mime/packages/io.github.chatapp.xml icons/hicolor/scalable/apps/io.github.chatapp.svg)
for s in 16 22 24 32 48 64 128 256 512; do
  files+=("icons/hicolor/${s}x${s}/apps/io.github.chatapp.png")
done

if [ "$uninstall" = 1 ]; then
  rm -rf "$PREFIX/lib/chatapp" "$PREFIX/bin/chatapp"
  for f in "${files[@]}"; do rm -f "$PREFIX/share/$f"; done
else
  [ -x "$bundle/chatapp" ] || { echo "no $bundle: run packaging/build.sh first" >&2; exit 1; }
  mkdir -p "$PREFIX/lib" "$PREFIX/bin"
  rm -rf "$PREFIX/lib/chatapp"
  cp -a "$bundle" "$PREFIX/lib/chatapp"
  ln -sfn "$PREFIX/lib/chatapp/chatapp" "$PREFIX/bin/chatapp"
  for f in "${files[@]}"; do
    install -D -m 644 "$bundle/share/$f" "$PREFIX/share/$f"
  done
  # the launcher must find the program even when PREFIX/bin is not on PATH
  sed -i "s|^Exec=chatapp|Exec=$PREFIX/bin/chatapp|; s|^TryExec=chatapp|TryExec=$PREFIX/bin/chatapp|" \
    "$PREFIX/share/applications/io.github.chatapp.desktop"
fi
# the desktop's caches; each tool is optional, and says nothing unless asked
for cmd in "update-desktop-database -q $PREFIX/share/applications" \
           "update-mime-database $PREFIX/share/mime" \
           "gtk-update-icon-cache -q -t $PREFIX/share/icons/hicolor"; do
  command -v "${cmd%% *}" >/dev/null && $cmd >/dev/null 2>&1 || true
done
echo "chatapp $([ "$uninstall" = 1 ] && echo removed from || echo installed in) $PREFIX"
