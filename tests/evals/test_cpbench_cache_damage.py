"""The CP-Bench call cache under damage and failure (security finding 7): anything but a well-formed entry is
a miss that gets overwritten, so a rerun always completes; a cache or report that cannot be written (disk
full, read-only, a file in the way) is one clear message; Ctrl-C prints one line and exits 130."""

from __future__ import annotations

import errno
import json
import os
import shutil
import types

import pytest

import evals.cpbench.cache as cache_module
import evals.cpbench.report as report_module
import evals.cpbench.runner as runner_module
from agents.testing import ScriptedChatModel
from evals.cli import main
from evals.cpbench.cache import CallCache
from evals.cpbench.dataset import load_samples
from evals.cpbench.runner import evaluate
from evals.output import OutputError, ensure_writable
from tests.helpers import write_qa


def answer_a(text: str) -> str:
    return "A"


def _write(text: str | bytes):
    def damage(path):
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
    return damage


def _folder(with_file: bool):
    def damage(path):
        path.unlink()
        path.mkdir()
        if with_file:
            (path / "junk.txt").write_text("x")
    return damage


def _dangling(path):
    path.unlink()
    path.symlink_to(path.parent / "nowhere.json")


def _loop(path):
    path.unlink()
    path.symlink_to(path)


def _shard_is_a_file(path):
    shutil.rmtree(path.parent)
    path.parent.write_text("not a folder")


def _shard_is_a_dangling_link(path):
    shutil.rmtree(path.parent)
    path.parent.symlink_to(path.parent.parent / "gone")


DAMAGE = {
    "list": _write("[1, 2]"),
    "reply_null": _write('{"reply": null}'),
    "reply_number": _write('{"model": "rule", "temperature": 0.0, "reply": 5}'),
    "reply_list": _write('{"reply": ["A"]}'),
    "reply_object": _write('{"reply": {"text": "A"}}'),
    "reply_nan": _write('{"reply": NaN}'),
    "json_null": _write("null"),
    "json_string": _write('"A"'),
    "json_number": _write("42"),
    "no_reply": _write('{"model": "rule"}'),
    "truncated": _write('{"model": "rule", "temperature": 0.0, "reply": "A'),
    "empty": _write(""),
    "binary": _write(b"\xff\xfe\x00\x9c garbage \x00"),
    "deeply_nested": _write("[" * 200_000),
    "other_call": _write('{"model": "someone-else", "temperature": 0.0, "reply": "B"}'),
    "folder": _folder(with_file=False),
    "folder_with_files": _folder(with_file=True),
    "dangling_link": _dangling,
    "link_loop": _loop,
    "shard_is_a_file": _shard_is_a_file,
    "shard_is_a_dangling_link": _shard_is_a_dangling_link,
}


@pytest.fixture(scope="module")
def qa(tmp_path_factory):
    return load_samples(write_qa(tmp_path_factory.mktemp("data"), n=1))  # 3 questions


def run(samples, cache, model=None, **kw):
    model = model or ScriptedChatModel(rule=answer_a)
    report = evaluate(samples, model, modes=["none"], mc=True, cache_dir=cache, **kw)
    return report, model


@pytest.mark.parametrize("form", sorted(DAMAGE))
def test_a_damaged_entry_is_a_miss_and_gets_replaced(qa, tmp_path, form):
    cache = tmp_path / "cache"
    run(qa, cache)
    entries = sorted(cache.glob("??/*.json"))
    assert len(entries) == 3
    for entry in entries:
        DAMAGE[form](entry)
    report, model = run(qa, cache)  # the rerun completes ...
    assert model.n_calls == 3 and report.calls == {"made": 3, "from_cache": 0}  # ... every damaged entry a miss
    assert report.metrics["none"]["overall"].mean == 100.0 and report.failed == 0
    for entry in entries:  # ... and replaced by a well-formed one
        assert entry.is_file() and not entry.is_symlink()
        assert json.loads(entry.read_text())["reply"] == "A"
    report, model = run(qa, cache)
    assert model.n_calls == 0 and report.calls == {"made": 0, "from_cache": 3}
    assert not list(cache.rglob("*.tmp"))


def test_one_damaged_entry_costs_one_call(qa, tmp_path):
    cache = tmp_path / "cache"
    run(qa, cache)
    DAMAGE["reply_null"](sorted(cache.glob("??/*.json"))[1])
    report, model = run(qa, cache)
    assert model.n_calls == 1 and report.calls == {"made": 1, "from_cache": 2}


def test_replies_with_any_characters_round_trip(tmp_path):
    cache = CallCache(tmp_path / "c")
    odd = "line\nbreak \u2028 \udcff lone surrogate, emoji 👩\u200d🔬, NUL \x00"
    assert cache.get_or_call("m", 0.0, "sys \udcfe", "user", lambda: odd) == odd
    assert cache.get_or_call("m", 0.0, "sys \udcfe", "user", lambda: "other") == odd
    assert (cache.hits, cache.calls) == (1, 1)


# -- write failures ------------------------------------------------------------------------------------

def _failing(module, name: str, err: int):
    """A stand-in for `module` whose function `name` raises OSError(err)."""
    def boom(*a, **k):
        raise OSError(err, os.strerror(err))
    return types.SimpleNamespace(**({k: getattr(module, k) for k in dir(module) if not k.startswith("__")} | {name: boom}))


@pytest.mark.parametrize(("err", "words"), [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "read-only"),
                                            (errno.EACCES, "permission denied"), (errno.EDQUOT, "quota")])
def test_cache_write_failures_are_clear_messages(qa, tmp_path, monkeypatch, err, words):
    cache = tmp_path / "cache"
    monkeypatch.setattr(cache_module, "json", _failing(json, "dump", err))
    with pytest.raises(OutputError, match=words) as info:
        run(qa, cache)
    assert "--cache" in str(info.value) and str(cache) in str(info.value)
    assert not list(cache.rglob("*.tmp"))  # the half-written file is gone


def test_cache_folder_that_cannot_be_created_fails_before_any_call(qa, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    model = ScriptedChatModel(rule=answer_a)
    with pytest.raises(OutputError, match="a file is in the way"):
        run(qa, blocker / "cache", model=model)
    assert model.n_calls == 0


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="permissions do not bind root (or non-POSIX)")
def test_read_only_cache_folder(qa, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="permission denied"):
            run(qa, cache)
    finally:
        cache.chmod(0o700)


def test_ensure_writable_names_the_cause(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match=r"cannot write the report at .*f/out \(a file is in the way.*--out DIR"):
        ensure_writable(tmp_path / "f" / "out", "the report")
    assert ensure_writable(tmp_path / "new" / "deep", "the report").is_dir()
    assert list((tmp_path / "new" / "deep").iterdir()) == []  # the probe file is removed


# -- the CLI: one line, never a traceback ---------------------------------------------------------------------

@pytest.fixture
def cli_model(monkeypatch):
    """Whatever --model says, the run gets this rule-based chat model (set .rule in the test)."""
    holder = types.SimpleNamespace(model=ScriptedChatModel(rule=answer_a))
    monkeypatch.setattr(runner_module, "chat_model", lambda spec, temperature=None: holder.model)
    return holder


def _cli(capsys, *argv):
    code = main(["cpbench", "run", *map(str, argv), "--mc", "--modes", "none", "oracle", "--model", "rule"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_cli_unwritable_out_is_one_line_before_any_call(tmp_path, capsys, cli_model):
    data = write_qa(tmp_path / "data", n=1)
    (tmp_path / "f").write_text("x")
    code, out, err = _cli(capsys, data, "--out", tmp_path / "f" / "out")
    assert code == 1 and out == ""
    assert err.strip().count("\n") == 0 and "a file is in the way" in err and "--out DIR" in err
    assert cli_model.model.n_calls == 0


def test_cli_disk_full_at_the_report_says_how_to_keep_the_answers(tmp_path, capsys, cli_model, monkeypatch):
    data = write_qa(tmp_path / "data", n=1)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report_module, "plot", full)
    code, _, err = _cli(capsys, data, "--out", tmp_path / "out")
    assert code == 1
    assert "the disk is full" in err and "scores.png" in err
    assert f"--cache {tmp_path / 'out' / 'cache'}" in err
    monkeypatch.undo()
    monkeypatch.setattr(runner_module, "chat_model", lambda spec, temperature=None: cli_model.model)
    calls = cli_model.model.n_calls
    code, out, _ = _cli(capsys, data, "--out", tmp_path / "out2", "--cache", tmp_path / "out" / "cache")
    assert code == 0 and "wrote" in out and cli_model.model.n_calls == calls  # nothing asked twice


@pytest.mark.parametrize("concurrency", [1, 3])
def test_cli_ctrl_c_prints_one_line_and_a_rerun_resumes(tmp_path, capsys, cli_model, concurrency):
    data = write_qa(tmp_path / "data", n=4)  # 12 questions x 2 modes = 24 calls
    state = {"n": 0}

    def interrupt_after_five(text):
        state["n"] += 1
        if state["n"] > 5:
            raise KeyboardInterrupt
        return "A"

    cli_model.model = ScriptedChatModel(rule=interrupt_after_five)
    code, out, err = _cli(capsys, data, "--out", tmp_path / "out", "--concurrency", concurrency)
    assert code == 130 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    cache = tmp_path / "out" / "cache"
    saved = len(list(cache.glob("??/*.json")))
    assert 5 <= saved < 24  # the queued work was dropped, not run to the end
    assert lines[0].startswith("ser-eval: interrupted;") and f"{saved} answered calls are saved in {cache}" in lines[0]
    assert "rerun the same command to resume" in lines[0]
    cli_model.model = ScriptedChatModel(rule=answer_a)
    code, out, _ = _cli(capsys, data, "--out", tmp_path / "out", "--concurrency", concurrency)
    assert code == 0 and cli_model.model.n_calls == 24 - saved


def test_cli_ctrl_c_without_cache_says_nothing_was_saved(tmp_path, capsys, cli_model):
    data = write_qa(tmp_path / "data", n=1)

    def interrupt(text):
        raise KeyboardInterrupt

    cli_model.model = ScriptedChatModel(rule=interrupt)
    code, _, err = _cli(capsys, data, "--out", tmp_path / "out", "--no-cache")
    assert code == 130 and err.strip() == "ser-eval: interrupted; nothing was saved (--no-cache); rerun to start again"


def test_ser_eval_ser_unwritable_out_is_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    code = main(["ser", str(tmp_path), "--out", str(tmp_path / "f" / "out"), "--no-baseline"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and err.strip().count("\n") == 0
    assert "cannot write the report" in err and "a file is in the way" in err
