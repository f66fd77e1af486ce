"""Errors meant for users, and file writes that never leave a half-written file or replace one we did not make.

Every output goes to a temporary file beside its destination, is flushed to disk (fsync), and is renamed into
place; the folder is fsync'd too, so a crash or power loss leaves either the old file or the new one, never an
empty one. A failed write removes its temporary file and any folders it created. Destinations that exist are
refused unless the caller allows replacing them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from sagan.errors import SaganError


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, hex, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename inside it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not support fsync on folders
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def make_parents(path: Path) -> list[Path]:
    """Create the missing parent folders of `path`; return those created, outermost first."""
    missing = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for folder in reversed(missing):
        folder.mkdir()
    return list(reversed(missing))


def check_output(path: str | Path, overwrite: bool = False, may_replace: Callable[[Path], bool] | None = None) -> Path:
    """Validate an output file path: not a folder, and not an existing file unless `overwrite` allows it.

    `may_replace(path)` can veto replacing an existing file even with `overwrite` (e.g. a file of another kind).
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise SaganError(f"{path} is a folder; give a file name")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise SaganError(f"{path} already exists; remove it or pass --overwrite")
        if may_replace is not None and not may_replace(path):
            raise SaganError(f"{path} exists and was not written by sagan; refusing to replace it")
    return path


def _temp_name(path: Path) -> Path:
    # Keep the suffix: writers such as PIL pick the format from it.
    return path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")


@contextlib.contextmanager
def atomic_output(path: str | Path, overwrite: bool = False, may_replace=None) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it is fsync'd and renamed to `path`, else removed.

    Refuses (SaganError) a folder, or an existing file unless `overwrite` (see `check_output`).
    """
    path = check_output(path, overwrite, may_replace)
    created = make_parents(path)
    tmp = _temp_name(path)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        for folder in created:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def write_text(path: str | Path, text: str, overwrite: bool = False, may_replace=None) -> Path:
    """Write `text` to `path` atomically (see `atomic_output`)."""
    with atomic_output(path, overwrite, may_replace) as tmp:
        tmp.write_text(text)
    return Path(path).expanduser()


def check_folder(path: str | Path) -> Path:
    """Validate an output folder: it must not exist, or be an empty folder."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise SaganError(f"{path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()):
        raise SaganError(f"{path} is a folder that is not empty; give a new or empty folder")
    return path


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it is renamed to `path` (which must not exist or be empty)."""
    path = check_folder(path)
    created = make_parents(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.mkdir()
    try:
        yield tmp
        for f in tmp.iterdir():
            fsync_file(f)
        os.replace(tmp, path)  # rename(2) may replace an empty folder
        fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
