"""Arrays for libjpeg-turbo to decode into that stay in the CPU cache.

libjpeg-turbo's x86 SIMD colour conversion (the last step of decoding a JPEG to RGB) writes
an output row with non-temporal stores, which bypass the cache, when the row starts on a
32-byte boundary (``vmovntdq`` in its ``jdcolext-avx2.asm``), and with ordinary stores
otherwise. A tile decoded to be copied into a window at once should stay in the cache:
measured on a 2-core machine, random 512 x 512 reads ran at ~300 reads/s when the tile
buffer fell on a 32-byte boundary and ~500 when it did not, and numpy's allocations fall
there or not by chance (the same program was fast in some processes, slow in others).

:func:`cached_empty` starts the array 16 bytes past a 32-byte boundary. Every row of a
tile then streams through the cache when its row length (3 x width bytes) is a multiple
of 32, as for 256, 512 and 1024 px tiles; for other widths (Aperio's 240 px: 720 bytes)
every other row starts on the boundary whatever the start, and half the rows still stream.
"""

from __future__ import annotations

import math
import threading

import numpy as np

_BOUNDARY = 32  # libjpeg-turbo's AVX2 store width: its test is ``rdi & 31``


def cached_empty(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised uint8 array of ``shape`` whose data starts 16 bytes off a 32-byte
    boundary (C-contiguous, writeable: imagecodecs and simplejpeg decode into it)."""
    size = math.prod(shape)
    raw = np.empty(size + _BOUNDARY + _BOUNDARY // 2, np.uint8)
    start = (_BOUNDARY // 2 - raw.ctypes.data) % _BOUNDARY
    return raw[start : start + size].reshape(shape)


def thread_buffer(local: threading.local, shape: tuple[int, ...]) -> np.ndarray:
    """This thread's reused :func:`cached_empty` buffer of ``shape``, kept in ``local``."""
    buffer: np.ndarray | None = getattr(local, "buffer", None)
    if buffer is None:
        buffer = local.buffer = cached_empty(shape)
    return buffer
