"""Read and decode patches in parallel worker threads, a few batches ahead of the model.

Tile decoders (imagecodecs, OpenSlide) and Pillow's resize release the GIL, so a small
thread pool keeps the model fed. At most ``prefetch`` batches are in flight, so memory
is bounded whatever the slide size. Patches of a batch that sit side by side in a row are
read as one region and cut, so a tile shared by neighbours is decoded once.

The pool belongs to the reader: :meth:`PatchReader.close` (called from the job's
``finally``, i.e. on cancel too) cancels what is queued and waits for running reads.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from PIL import Image
from slidescope.app.analysis.patches import PatchGrid
from slidescope.app.slides.slide import Slide

_MAX_RUN_PX = 8192  # longest region read at once (level px): bounds a worker's memory


class PatchReader:
    """Batches of ``(coords (B, 2), patches (B, patch_px, patch_px, 3) uint8)``.

    Parameters
    ----------
    slide : Slide
        The open slide.
    grid : PatchGrid
        Read level, read size and output size of the patches.
    batch_size : int
        Patches per batch.
    workers : int
        Reading threads (0: read in the calling thread, for debugging and baselines).
    prefetch : int
        Batches in flight beyond the one being consumed (default: ``workers + 1``).
    """

    def __init__(
        self,
        slide: Slide,
        grid: PatchGrid,
        batch_size: int = 64,
        workers: int = 4,
        prefetch: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, not {batch_size}")
        self.slide = slide
        self.grid = grid
        self.batch_size = batch_size
        self.workers = max(0, workers)
        self.prefetch = max(1, prefetch if prefetch is not None else self.workers + 1)
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> PatchReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers: queued reads are cancelled, running ones finish."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def batches(self, coords: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield the patches of ``coords`` (level-0 x, y) in order, batch by batch."""
        coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
        chunks = (coords[i : i + self.batch_size] for i in range(0, len(coords), self.batch_size))
        if self.workers == 0:
            for chunk in chunks:
                yield chunk, self.read_batch(chunk)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="patch-reader")
        in_flight: deque[tuple[np.ndarray, Future[np.ndarray]]] = deque()
        try:
            for chunk in chunks:
                in_flight.append((chunk, self._pool.submit(self.read_batch, chunk)))
                if len(in_flight) > self.prefetch:
                    done, future = in_flight.popleft()
                    yield done, future.result()
            while in_flight:
                done, future = in_flight.popleft()
                yield done, future.result()
        finally:
            for _, future in in_flight:
                future.cancel()

    def read_batch(self, coords: np.ndarray) -> np.ndarray:
        """Read and resize the patches of ``coords`` (one thread's work)."""
        grid = self.grid
        out = np.empty((len(coords), grid.patch_px, grid.patch_px, 3), dtype=np.uint8)
        for start, stop in _row_runs(coords, grid, _MAX_RUN_PX):
            self._read_run(coords[start:stop], out[start:stop])
        return out

    def _read_run(self, coords: np.ndarray, out: np.ndarray) -> None:
        grid = self.grid
        ds = grid.read_downsample
        size = grid.read_size
        x0, y0 = int(coords[0, 0]), int(coords[0, 1])
        lx0 = int(np.floor(x0 / ds))
        offsets = np.floor(coords[:, 0] / ds).astype(np.int64) - lx0
        width = int(offsets[-1]) + size
        region = self.slide.read_region((x0, y0), grid.read_level, (width, size))
        for i, offset in enumerate(offsets):
            patch = region[:, offset : offset + size]
            if size != grid.patch_px:
                patch = np.asarray(
                    Image.fromarray(np.ascontiguousarray(patch)).resize(
                        (grid.patch_px, grid.patch_px), Image.Resampling.BILINEAR
                    )
                )
            out[i] = patch


def _row_runs(coords: np.ndarray, grid: PatchGrid, max_px: int) -> Iterator[tuple[int, int]]:
    """Index ranges of consecutive patches on one row whose union is at most ``max_px`` wide."""
    if len(coords) == 0:
        return
    limit = max_px * grid.read_downsample
    gap = grid.stride_level0
    start = 0
    for i in range(1, len(coords) + 1):
        if (
            i == len(coords)
            or coords[i, 1] != coords[start, 1]
            or coords[i, 0] - coords[i - 1, 0] != gap
            or coords[i, 0] + grid.patch_size_level0 - coords[start, 0] > limit
        ):
            yield start, i
            start = i
