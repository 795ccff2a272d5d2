#!/usr/bin/env bash
# The wheels tests/benchmarks/device_check.py needs on the lent GPU machine, into .whl/
# (ignored through .git/info/exclude). That machine has Python 3.12 with torch, h5py,
# numpy, scipy, scikit-image, Pillow, tifffile and safetensors, and reaches no package
# index: SlideScope itself and the rest of its core's dependencies travel as wheels, at the
# versions this checkout's .venv holds (the versions its tests passed with). ~45 MB.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
MISSING="dask distributed zarr numcodecs donfig google-crc32c imagecodecs simplejpeg
openslide-python openslide-bin shapely platformdirs tblib zict locket partd tornado"

exclude="$(git rev-parse --git-dir)/info/exclude"
mkdir -p "$(dirname "$exclude")"
grep -qsx '/.whl/' "$exclude" || echo '/.whl/' >>"$exclude"
rm -rf .whl && mkdir .whl
# shellcheck disable=SC2086
pins=$("$PY" -c 'import sys; from importlib.metadata import version
print(" ".join(f"{n}=={version(n)}" for n in sys.argv[1:]))' $MISSING)
platforms=""
for p in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux_2_5 manylinux1; do
    platforms+=" --platform ${p}_x86_64"
done
# shellcheck disable=SC2086
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp $platforms -d .whl $pins
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w .whl .
du -sh .whl
