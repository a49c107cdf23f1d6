"""ser_tool.files.replaced_atomically: the file is replaced whole, or not at all."""

from __future__ import annotations

import os

import pytest

from ser_tool.files import replaced_atomically


def test_the_file_is_replaced_when_the_block_ends(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with replaced_atomically(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target and not tmp.exists()  # the block creates it
        tmp.write_text("new")
        assert target.read_text() == "old"  # not before the block ends
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_an_error_leaves_the_old_file_and_no_temporary_one(tmp_path):
    target = tmp_path / "model.safetensors"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), replaced_atomically(target) as tmp:
        tmp.write_text("half of the new")
        raise KeyboardInterrupt  # Ctrl-C while writing
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
    with pytest.raises(OSError), replaced_atomically(tmp_path / "no-such-folder" / "x") as tmp:
        tmp.write_text("x")


def test_the_new_file_has_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with replaced_atomically(tmp_path / "summary.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "summary.txt").stat().st_mode & 0o777 == 0o644  # not a private temporary file's 0600


def test_two_writers_get_different_temporary_paths(tmp_path):
    with replaced_atomically(tmp_path / "a") as one, replaced_atomically(tmp_path / "a") as two:
        assert one != two
        one.write_text("1")
        two.write_text("2")
    assert (tmp_path / "a").read_text() == "1"  # the outer block ends last


def test_a_durable_write_reaches_the_disk_before_and_after_the_rename(tmp_path, monkeypatch):
    import ser_tool.files as files

    synced = []
    monkeypatch.setattr(files, "_fsync", lambda p: synced.append((p, (tmp_path / "part").exists())))
    with replaced_atomically(tmp_path / "part", durable=True) as tmp:
        tmp.write_text("rows")
    assert synced == [(tmp, False), (tmp_path, True)]  # the file's bytes before the rename, the folder after it
    synced.clear()
    with replaced_atomically(tmp_path / "report", durable=False) as tmp:
        tmp.write_text("x")
    assert synced == []
