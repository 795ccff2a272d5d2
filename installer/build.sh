#!/usr/bin/env bash
# Build the self-contained SlideScope desktop bundle for Linux x86-64:
#   dist/slidescope-<version>-linux-x86_64.tar.gz
# holding slidescope/ (Python, CPU torch, napari, Qt, SlideScope, the demo model),
# install.sh, slidescope.desktop and the icon. Needs Python >= 3.10 and the network to
# PyPI once (for the build environment); the bundle itself needs neither.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
PYTHON="${PYTHON:-python3}"
TORCH="${TORCH:-torch==2.13.0}"
build="$root/build/installer"
venv="$build/venv"
dist="$root/dist"
start=$(date +%s)

if [ ! -x "$venv/bin/pyinstaller" ] || [ pyproject.toml -nt "$venv/.installed" ]; then
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  # CPU torch first, so the package's torch>=2.6 takes it instead of a CUDA build
  "$venv/bin/pip" install -q "$TORCH"
  "$venv/bin/pip" install -q ".[gui]" "$TORCH" "pyinstaller>=6.10"
  touch "$venv/.installed"
fi
version=$("$venv/bin/python" -c "from importlib.metadata import version; print(version('slidescope'))")
name="slidescope-$version-linux-x86_64"

rm -rf "$build/dist"  # work/ is PyInstaller's cache: a rebuild reuses it
(cd installer && "$venv/bin/pyinstaller" --noconfirm --log-level WARN \
  --distpath "$build/dist" --workpath "$build/work" slidescope.spec)

stage="$build/stage/$name"
rm -rf "$build/stage"
mkdir -p "$stage"
mv "$build/dist/slidescope" "$stage/slidescope"
cp installer/install.sh installer/slidescope.desktop "$stage/"
cp resources/icons/slidescope.svg resources/icons/slidescope.png "$stage/"
cp installer/README.md "$stage/README.md"
mkdir -p "$dist"
tar -C "$build/stage" -czf "$dist/$name.tar.gz" "$name"
end=$(date +%s)
echo "bundle: $dist/$name.tar.gz ($(du -sh "$stage" | cut -f1) unpacked, $(du -sh "$dist/$name.tar.gz" | cut -f1) packed, built in $((end - start)) s)"
