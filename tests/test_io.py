"""unfoldkit.unrolled.io.atomic_write: the permissions the umask gives, fsync of the file and its directory."""
import os
import stat

import numpy as np
import pytest

from unfoldkit.unrolled import io


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield os.umask
    os.umask(saved)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_file_gets_the_mode_the_umask_gives(tmp_path, umask, mask, mode):
    umask(mask)
    def save(path):
        with open(path, "wb") as fh:
            np.save(fh, np.zeros(2))

    for target in (io.write_text(tmp_path / "a.txt", "x"), io.write_json(tmp_path / "b.json", {"a": 1}),
                   io.atomic_write(tmp_path / "c.npy", save)):
        assert stat.S_IMODE(target.stat().st_mode) == mode, target
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.json", "c.npy"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_umask_is_read_without_being_changed(umask):
    umask(0o027)
    assert io._current_umask() == 0o027
    assert os.umask(0o027) == 0o027  # still in place after the read


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_overwriting_an_existing_file_takes_the_umask_mode(tmp_path, umask):
    umask(0o077)
    target = io.write_text(tmp_path / "a.txt", "old")
    umask(0o022)
    io.write_text(target, "new")
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o644


def test_file_and_directory_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    io.write_text(tmp_path / "a.txt", "x")
    assert synced[:1] == [False]  # the file's data first
    if os.name == "posix":
        assert synced[1:] == [True]  # then the directory entry of the rename


def test_failed_write_leaves_no_temporary_file(tmp_path):
    def boom(path):
        path.write_text("partial")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        io.atomic_write(tmp_path / "a.txt", boom)
    assert list(tmp_path.iterdir()) == []
