"""How every file a user cares about is written: beside the target, then renamed onto it.

One helper for the whole program (features, checkpoints, projects, annotations, exports,
settings). A reader never sees half a file: the bytes go to a hidden sibling
(``.<name>.<random>.tmp``), are flushed to disk (``fsync``), and only then replace the
target with ``os.replace``, which is atomic on POSIX and Windows. A writer killed before
the rename leaves only its hidden sibling, which :func:`remove_stale_temps` clears on the
next run of the same job. The file gets the user's umask like any other output (``mkstemp``
would make it private).

It lives in ``slidescope.models`` because both ``models`` (checkpoints) and ``app`` write
files, and ``models`` may not import ``app``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

TEMP_SUFFIX = ".tmp"
BACKUP_SUFFIX = ".bkp"


def _umask() -> int:
    # os.umask can only be read by setting it; do it once, at import, in the main thread
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def temp_sibling(path: Path) -> Path:
    """A hidden, unique temporary name beside ``path`` that keeps its suffixes.

    Writers that choose a format from the suffix (Pillow, tifffile, h5py) still do.
    """
    suffixes = "".join(path.suffixes[-2:])
    stem = path.name[: len(path.name) - len(suffixes)] if suffixes else path.name
    return path.with_name(f".{stem}.{secrets.token_hex(4)}{suffixes}{TEMP_SUFFIX}")


def backup_path(path: str | Path) -> Path:
    """Where the previous version of ``path`` is kept (``<name>.bkp``)."""
    path = Path(path)
    return path.with_name(path.name + BACKUP_SUFFIX)


def _fsync_file(path: Path) -> None:
    with contextlib.suppress(OSError), open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform lets a folder be opened
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, keep_backup: bool = False) -> Iterator[Path]:
    """A temporary sibling to write; it replaces ``path`` when the block succeeds.

    Parameters
    ----------
    path : str or Path
        The file to (re)write. Its folder is created if needed.
    keep_backup : bool
        Keep the version being replaced as ``<name>.bkp`` (see :func:`backup_path`).

    Yields
    ------
    Path
        Where to write. If the block raises (or the process is killed), ``path`` is
        untouched and the temporary file is removed (or left for
        :func:`remove_stale_temps`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        yield tmp
        if tmp.is_file():
            _fsync_file(tmp)
            os.chmod(tmp, _FILE_MODE)
        if keep_backup and path.is_file():
            # a hard link keeps the old version under its backup name with no copy and no
            # moment where `path` is missing; where links are not allowed, copy
            bkp = backup_path(path)
            bkp_tmp = temp_sibling(bkp)
            try:
                os.link(path, bkp_tmp)
            except OSError:
                import shutil

                shutil.copy2(path, bkp_tmp)
            os.replace(bkp_tmp, bkp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        if tmp.is_dir():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes, keep_backup: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    path = Path(path)
    with atomic_path(path, keep_backup=keep_backup) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return path


def write_text_atomic(path: str | Path, text: str, keep_backup: bool = False) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically; returns the path."""
    return write_bytes_atomic(path, text.encode("utf-8"), keep_backup=keep_backup)


def remove_stale_temps(folder: str | Path, older_than_s: float = 60.0) -> list[Path]:
    """Delete temporary siblings that killed writers left in ``folder``; returns them.

    Only files made by :func:`temp_sibling` (hidden, ending in ``.tmp``) and older than
    ``older_than_s`` are removed, so a writer still at work in another process keeps its
    file.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    cutoff = time.time() - older_than_s
    for entry in folder.iterdir():
        if not (entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX)):
            continue
        try:
            if entry.stat().st_mtime > cutoff:
                continue
            if entry.is_dir():
                import shutil

                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            continue
    return removed
