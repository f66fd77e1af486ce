"""`sagan.safe_files`: writes that leave the old file or the new one, never a partial one, and never replace a
file they may not."""

import hashlib

import pytest

from sagan.errors import SaganError
from sagan.safe_files import atomic_folder, atomic_output, check_output, file_sha256, write_text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(path, overwrite=True) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    write_text(path, "new", overwrite=True)
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_failed_write_removes_the_folders_it_made(tmp_path):
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "a" / "b" / "out.txt") as tmp:
        tmp.write_text("x")
        raise RuntimeError
    assert not (tmp_path / "a").exists()


def test_existing_files_and_folders_are_refused_unless_allowed(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("mine")
    with pytest.raises(SaganError, match="already exists; remove it or pass --overwrite"):
        check_output(path)
    with pytest.raises(SaganError, match="was not written by sagan"):
        check_output(path, overwrite=True, may_replace=lambda p: False)
    with pytest.raises(SaganError, match="is a folder"):
        check_output(tmp_path)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(SaganError, match="not empty"), atomic_folder(tmp_path / "full"):
        pass
    assert path.read_text() == "mine"


def test_file_sha256_is_hashlibs(tmp_path):
    path = tmp_path / "blob"
    data = bytes(range(256)) * 9000  # more than one 1 MiB read
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
