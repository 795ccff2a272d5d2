#!/usr/bin/env bash
# Install the SlideScope bundle for this user: the program under ~/.local/lib/slidescope,
# a `slidescope` command in ~/.local/bin, the launcher entry and the icon.
# Run it from the unpacked bundle folder:  ./install.sh   (or PREFIX=/opt/x ./install.sh)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix="${PREFIX:-$HOME/.local}"
lib="$prefix/lib/slidescope"
bindir="$prefix/bin"
apps="$prefix/share/applications"
icons="$prefix/share/icons/hicolor"

mkdir -p "$lib" "$bindir" "$apps" "$icons/scalable/apps" "$icons/256x256/apps"
# replace an earlier install whole: a half-old, half-new folder would not start
rm -rf "$lib.new"
cp -a "$here/slidescope" "$lib.new"
rm -rf "$lib.old"
[ -d "$lib" ] && mv "$lib" "$lib.old"
mv "$lib.new" "$lib"
rm -rf "$lib.old"
ln -sf "$lib/slidescope" "$bindir/slidescope"
cp "$here/slidescope.svg" "$icons/scalable/apps/slidescope.svg"
cp "$here/slidescope.png" "$icons/256x256/apps/slidescope.png"
sed "s|@BINDIR@|$bindir|" "$here/slidescope.desktop" > "$apps/slidescope.desktop"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$apps" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q "$icons" 2>/dev/null || true
echo "SlideScope installed: $bindir/slidescope (launcher: $apps/slidescope.desktop)"
case ":$PATH:" in *":$bindir:"*) ;; *) echo "note: add $bindir to your PATH";; esac
