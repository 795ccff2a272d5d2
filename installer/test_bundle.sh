#!/usr/bin/env bash
# Check a built bundle as a user's machine would see it: unpacked in an empty folder, run
# with a clean environment (no venv, no PYTHONPATH, no display), installed with install.sh.
# Usage: installer/test_bundle.sh dist/slidescope-*.tar.gz
set -euo pipefail
tarball="$(realpath "$1")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
tar -C "$tmp" -xzf "$tarball"
bundle="$(find "$tmp" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
clean=(env -i HOME="$tmp/home" PATH=/usr/bin:/bin LANG=C.UTF-8)
mkdir -p "$tmp/home"

echo "== self-check in a clean environment"
start=$(date +%s)
"${clean[@]}" "$bundle/slidescope/slidescope" --self-check
echo "   took $(( $(date +%s) - start )) s"

echo "== --version"
"${clean[@]}" "$bundle/slidescope/slidescope" --version

echo "== the window without a display says so in one line"
set +e
out="$("${clean[@]}" "$bundle/slidescope/slidescope" 2>&1)"
code=$?
set -e
echo "   $out (exit $code)"
[ "$code" -eq 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ]

echo "== the window: the demo on a virtual screen (the GUI half of the bundle)"
if command -v xvfb-run >/dev/null; then
  start=$(date +%s)
  "${clean[@]}" QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \
    "$bundle/slidescope/slidescope" demo --out "$tmp/demo" --screenshot "$tmp/demo.png" >/dev/null
  [ -s "$tmp/demo.png" ]
  echo "   window with the demo's heatmaps saved in $(( $(date +%s) - start )) s"
else
  echo "   xvfb-run not installed (apt-get install xvfb)"
  exit 1
fi

echo "== install.sh into a private prefix, and the launcher entry"
"${clean[@]}" PREFIX="$tmp/prefix" "$bundle/install.sh"
desktop="$tmp/prefix/share/applications/slidescope.desktop"
if command -v desktop-file-validate >/dev/null; then
  desktop-file-validate "$desktop"
  echo "   desktop-file-validate: ok"
else
  echo "   desktop-file-validate not installed (apt-get install desktop-file-utils)"
  exit 1
fi
"${clean[@]}" "$tmp/prefix/bin/slidescope" --version
echo "bundle check passed"
