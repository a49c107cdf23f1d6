"""ser_tool.batch.store.OutputStore's files: parts and summary.json written whole (ser_tool.files), what a killed
run left removed when the next opens the folder, and a full disk reported as an error that says what was kept."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from ser_tool.batch.store import OutputStore, read_rows
from ser_tool.errors import SERError
from ser_tool.files import leftover_temporaries, replaced_atomically

pytest.importorskip("pyarrow")


def _row(i: int) -> dict:
    return {"path": f"/audio/{i}.wav", "size_bytes": 100 + i, "mtime_ns": 7, "duration": 2.0, "emotion": "neutral"}


def test_what_a_killed_writer_left_is_found_and_removed_when_the_store_opens(tmp_path):
    with replaced_atomically(tmp_path / "part-a.parquet") as tmp:
        tmp.write_text("half")
        assert leftover_temporaries(tmp_path) == [tmp]  # its names are the ones looked for
    left = tmp_path / ".part-b.parquet.4242-0123abcd.tmp"  # a writer killed before its cleanup ran
    left.write_text("half")
    old = tmp_path / ".tmp-part-20261201T000000-abc123-00000.parquet"  # an earlier version's temporary part
    old.write_text("half")
    (tmp_path / ".notes.tmp").write_text("a user's file")  # hidden and .tmp, but not a temporary of ours
    (tmp_path / "part-a.parquet").unlink()
    assert leftover_temporaries(tmp_path) == [left]
    with OutputStore(tmp_path, "parquet"):
        assert not left.exists() and not old.exists()
    assert (tmp_path / ".notes.tmp").read_text() == "a user's file"


def test_parts_and_summary_are_written_whole_and_leave_no_temporary_file(tmp_path):
    with OutputStore(tmp_path, "jsonl", part_rows=2) as store:
        assert store.add(_row(0)) is None
        part = store.add(_row(1))
        assert part is not None and part.name.endswith(".jsonl")
        store.write_summary({"complete": True})
    assert [r["path"] for r in read_rows(tmp_path)] == ["/audio/0.wav", "/audio/1.wav"]
    assert json.loads((tmp_path / "summary.json").read_text())["rows"] == 2
    assert leftover_temporaries(tmp_path) == [] and not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_a_full_disk_is_an_error_that_says_what_was_kept_and_loses_no_queued_row(tmp_path, monkeypatch):
    full = OSError(errno.ENOSPC, "No space left on device")
    real_write_text = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name.startswith(".summary.json."):
            raise full
        return real_write_text(self, *args, **kwargs)

    with OutputStore(tmp_path, "parquet", part_rows=10) as store:
        store.add(_row(0))
        assert store.flush() is not None  # one part on disk
        monkeypatch.setattr(Path, "write_text", write_text)
        with pytest.raises(SERError, match=r"cannot write .*summary\.json \(No space left on device\); the finished rows are "
                                           r"saved in the part files\. Free disk space .* rerun the same command"):
            store.write_summary({"complete": False})
        monkeypatch.undo()
        import pyarrow.parquet as pq

        def no_room(*args, **kwargs):
            raise full

        monkeypatch.setattr(pq, "write_table", no_room)
        store.add(_row(1))
        with pytest.raises(SERError, match=r"cannot write .*part-.*\.parquet \(No space left on device\); 1 finished row\(s\) "
                                           r"were not saved\. Free disk space"):
            store.flush()
        assert leftover_temporaries(tmp_path) == []
        monkeypatch.undo()
        assert store.flush() is not None  # the queued row was kept: written once there is room
    assert [r["path"] for r in read_rows(tmp_path)] == ["/audio/0.wav", "/audio/1.wav"]
