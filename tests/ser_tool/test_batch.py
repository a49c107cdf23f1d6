"""`ser batch` / `ser batch-report`: inputs, rows, errors, resume after a kill, formats, both engines."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_tool.backends import BackendSpec
from ser_tool.batch import ROW_FIELDS, Progress, StopRequest, collect_inputs, read_rows, read_table, run_batch
from ser_tool.batch.rows import PROB_COLUMNS, TIMING_COLUMNS
from ser_tool.batch.store import part_files
from ser_tool.cli import main
from ser_tool.errors import ConfigError
from ser_tool.files import leftover_temporaries
from ser_tool.labels import EMOTIONS
from ser_tool.testing import SR, silence, voice
from tests.helpers import REPO, SHARED_DATA

pa = pytest.importorskip("pyarrow", reason="ser batch writes Parquet with pyarrow (pip install -e '.[batch]')")

REAL_CLIPS = ["03-01-01-01-01-01-01.opus", "03-01-05-02-01-01-02.opus", "03-01-04-01-02-02-03.opus",
              "03-01-03-02-01-01-04.opus"]


def _voices(folder: Path, n: int, seconds: float = 1.5, prefix: str = "v") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        p = folder / f"{prefix}{k:03d}.wav"
        sf.write(p, voice(seconds, f0=110 + 7 * k, amp=0.05 + 0.3 * (k % 3) / 2), SR)
        out.append(p)
    return out


def _write_manifest(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


# -- inputs (no model) -------------------------------------------------------------------------------------

def test_inputs_files_folders_globs_manifests_and_lists(tmp_path):
    a = _voices(tmp_path / "calls" / "a", 2)
    b = _voices(tmp_path / "calls" / "b" / "deep", 1, prefix="w")
    (tmp_path / "calls" / "notes.txt").write_text("not audio")  # a folder listing skips it
    (tmp_path / "calls" / "b" / "x.flac.part").write_bytes(b"")
    _write_manifest(tmp_path / "calls" / "m.csv", [{"path": "a/v000.wav", "speaker": "s1", "label": "angry"},
                                                   {"path": str(b[0]), "speaker": "", "label": "sad"}])
    (tmp_path / "list.txt").write_text(f"# comment\n\ncalls/a/v001.wav\n{a[0]}\n")

    found = collect_inputs([str(tmp_path / "calls")])
    assert [Path(r.path) for r in found.recordings] == [*a, b[0]] and found.extra_columns == []
    assert collect_inputs([str(tmp_path / "calls")], pattern="w*.wav").recordings[0].path == str(b[0])
    assert [Path(r.path) for r in collect_inputs([str(tmp_path / "calls" / "*" / "v*.wav")]).recordings] == a
    assert [Path(r.path) for r in collect_inputs([str(tmp_path / "calls" / "**")]).recordings] == [*a, b[0]]

    m = collect_inputs([str(tmp_path / "calls" / "m.csv")])
    assert [Path(r.path) for r in m.recordings] == [a[0], b[0]]  # relative to the manifest's folder
    assert m.recordings[0].source == "a/v000.wav" and m.extra_columns == ["speaker", "label"]
    assert m.recordings[0].extra == {"speaker": "s1", "label": "angry"} and m.recordings[1].extra["speaker"] is None

    listed = collect_inputs([str(tmp_path / "list.txt"), str(a[0])])  # each path once, first mention wins
    assert [Path(r.path) for r in listed.recordings] == [a[1], a[0]]
    r = listed.recordings[0]
    st = os.stat(a[1])
    assert r.key == (str(a[1]), st.st_size, st.st_mtime_ns)


def test_inputs_that_name_nothing_are_usage_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file or folder"):
        collect_inputs([str(tmp_path / "nope.wav")])
    with pytest.raises(ConfigError, match="matched no audio files"):
        collect_inputs([str(tmp_path / "*.wav")])
    (tmp_path / "bad.csv").write_text("file,label\nx.wav,angry\n")
    with pytest.raises(ConfigError, match="'path' column"):
        collect_inputs([str(tmp_path / "bad.csv")])
    assert main(["batch", str(tmp_path / "nope.wav"), "--out", str(tmp_path / "o")]) == 2
    assert main(["batch", str(tmp_path), "--out", str(tmp_path / "o"), "--address", "auto"]) == 2  # ray only


# -- the local engine on real and broken files ---------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Real clips and broken files in one folder, listed by a manifest with extra columns."""
    ravdess = SHARED_DATA / "ravdess" / "audio"
    if not all((ravdess / c).is_file() for c in REAL_CLIPS):
        pytest.skip("../shared/data/ravdess is absent: the real-recording batch tests need it")
    root = tmp_path_factory.mktemp("corpus")
    audio = root / "audio"
    audio.mkdir()
    for c in REAL_CLIPS:
        shutil.copy(ravdess / c, audio / c)
    (audio / "garbage.wav").write_bytes(b"RIFF\x00\x00not really a wave file" * 10)
    (audio / "empty.opus").write_bytes(b"")
    sf.write(audio / "silence.wav", silence(2.0), SR)
    rows = [{"path": f"audio/{c}", "speaker": f"spk{k % 2}", "label": "neutral", "duration": "3"}
            for k, c in enumerate(REAL_CLIPS)]
    rows += [{"path": f"audio/{n}", "speaker": "spk9", "label": "broken", "duration": ""}
             for n in ("garbage.wav", "empty.opus", "silence.wav", "missing.wav")]
    return _write_manifest(root / "manifest.csv", rows)


@pytest.fixture(scope="module")
def local_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("out_local")
    code = main(["batch", str(corpus), "--out", str(out), "--workers", "2"])
    return code, out


@pytest.mark.data
@pytest.mark.slow
def test_local_engine_rows_and_errors(local_run, corpus):
    code, out = local_run
    assert code == 1  # some recordings failed; the others are written
    rows = {Path(r["path"]).name: r for r in read_rows(out)}
    assert len(rows) == 8 and len(read_rows(out, latest=False)) == 8
    assert {n: rows[n]["error_type"] for n in ("garbage.wav", "empty.opus", "silence.wav", "missing.wav")} == {
        "garbage.wav": "AudioDecodeError", "empty.opus": "EmptyAudioError", "silence.wav": "NoSpeechError",
        "missing.wav": "AudioNotFoundError"}
    assert rows["missing.wav"]["size_bytes"] is None and "missing.wav" in rows["missing.wav"]["error"]

    from ser_tool import Analyzer

    direct = Analyzer()  # the default model, as `ser batch` uses it
    for name in REAL_CLIPS:
        r = rows[name]
        assert r["error"] is None and r["error_type"] is None
        probs = [r[c] for c in PROB_COLUMNS]
        assert sum(probs) == pytest.approx(1.0, abs=1e-3) and r["emotion"] == EMOTIONS[int(np.argmax(probs))]
        assert all(0 <= r[d] <= 1 for d in ("valence", "arousal", "dominance"))
        assert 0 < r["speech_duration"] <= r["duration"] and r["backend"] == "voice" and r["seconds"] > 0
        assert r["timeline"] and r["timeline"][0]["start"] == 0 and r["timeline"][-1]["end"] == pytest.approx(r["duration"])
        report = direct.analyze(r["path"], timeline=True)  # the same numbers as analysing in-process
        assert r["emotion"] == report.overall.emotion and probs == list(report.overall.probabilities.as_tuple())
        assert len(r["timeline"]) == len(report.timeline)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == 8 and summary["analysed"] == 4 and summary["failed"] == 4
    assert summary["last_run"]["complete"] is True and summary["last_run"]["workers"] == 2
    assert sum(summary["emotions"].values()) == 4


@pytest.mark.data
@pytest.mark.slow
def test_manifest_columns_are_carried_through(local_run):
    _, out = local_run
    part = part_files(out)["parquet"][0]
    import pyarrow.parquet as pq

    schema = pq.read_schema(part)
    assert list(schema.names[: len(ROW_FIELDS)]) == list(ROW_FIELDS)
    assert schema.names[len(ROW_FIELDS):] == ["speaker", "label", "manifest_duration"]  # clash: prefixed
    assert schema.field("timeline").type.value_type.field("emotion").type == pa.string()
    table = read_table(out)
    assert table.num_rows == 8 and table.schema.names == schema.names
    rows = {r["source"]: r for r in read_rows(out)}
    assert rows["audio/" + REAL_CLIPS[1]]["speaker"] == "spk1" and rows["audio/missing.wav"]["label"] == "broken"
    assert rows["audio/" + REAL_CLIPS[0]]["manifest_duration"] == "3" and rows["audio/empty.opus"]["manifest_duration"] is None


@pytest.mark.data
@pytest.mark.slow
def test_rerun_skips_everything_and_report(local_run, corpus, tmp_path, capsys):
    _, out = local_run
    before = sorted(p.name for p in out.glob("part-*"))
    assert main(["batch", str(corpus), "--out", str(out)]) == 1  # nothing to do; the failures still count
    assert sorted(p.name for p in out.glob("part-*")) == before
    assert json.loads((out / "summary.json").read_text())["last_run"]["skipped"] == 8
    capsys.readouterr()

    assert main(["batch-report", str(out), "--by", "label", "--out", str(tmp_path / "rep"), "--top", "3"]) == 0
    text = capsys.readouterr().out
    assert "| neutral | 4 | 0 |" in text and "| broken | 0 | 4 |" in text and "## Slowest 3 files" in text
    for name in ("emotions.png", "valence_arousal.png", "distribution.png", "report.md"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    with (tmp_path / "rep" / "failed.csv").open() as f:
        assert sorted(r["error_type"] for r in csv.DictReader(f)) == [
            "AudioDecodeError", "AudioNotFoundError", "EmptyAudioError", "NoSpeechError"]
    assert main(["batch-report", str(out), "--by", "nope", "--no-plots"]) == 2


@pytest.mark.data
@pytest.mark.slow
def test_ray_engine_writes_the_same_rows_as_the_local_engine(local_run, corpus, tmp_path):
    ray = pytest.importorskip("ray", reason="the Ray engine needs ray[data] (pip install -e '.[ray]')")
    pytest.importorskip("ray.data", reason="the Ray engine needs ray[data] (pip install -e '.[ray]')")
    _, local_out = local_run
    from ser_tool.backends import BackendSpec

    from tests.helpers import CrashingFactory

    _voices(tmp_path / "crashing", 3)
    sf.write(tmp_path / "crashing" / "crash.wav", voice(1.0), SR)
    # Ray's workers import the crashing test model from tests.helpers in this checkout.
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        result = run_batch([str(corpus)], tmp_path / "ray", spec=BackendSpec(), engine="ray", workers=2)
        crashed = run_batch([str(tmp_path / "crashing")], tmp_path / "ray_crash", spec=BackendSpec("embedded"),
                            engine="ray", workers=2, make_analyzer=CrashingFactory())
    finally:
        ray.shutdown()
    assert result.processed == 8 and result.failed == 4 and not result.interrupted

    def comparable(folder):
        return {r["path"]: {k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in read_rows(folder)}

    assert comparable(tmp_path / "ray") == comparable(local_out)
    # A file that kills its Ray worker is an error row too, and the job goes on.
    assert crashed.processed == 4 and crashed.failed == 1
    errors = {Path(r["path"]).name: r["error_type"] for r in read_rows(tmp_path / "ray_crash")}
    assert errors == {"v000.wav": None, "v001.wav": None, "v002.wav": None, "crash.wav": "WorkerCrashed"}


# -- the Ray engine on a real cluster: `ray start --head`, then `ser batch --address` as a user would ------

def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _clean_env() -> dict[str, str]:
    """This environment without Ray's settings (an address, an auth mode) and with this checkout importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="module")
def ray_head():
    """A one-node Ray cluster started as on a head node: `ray start --head --block` (2 CPUs, token
    authentication on, as on a head that has a token; the token is given in the environment so that
    nothing is written to ~/.ray). Yields (GCS port, environment for a driver). Stopped in teardown by SIGTERM to
    that command (it stops what it started), then SIGKILL to its process group; never by `ray stop`,
    which would stop every Ray instance of this user on the machine. Every wait is bounded."""
    pytest.importorskip("ray.data", reason="the Ray engine needs ray[data] (pip install -e '.[ray]')")
    ray_cli = Path(sys.executable).with_name("ray")
    if not ray_cli.is_file():
        pytest.skip(f"the ray command is not beside {sys.executable} (pip install -e '.[ray]')")
    # Ray's unix sockets live under its temp dir, and their paths must stay short (107 bytes): not tmp_path.
    temp = Path(tempfile.mkdtemp(prefix="ser-ray-", dir="/tmp" if os.path.isdir("/tmp") else None))
    port, agent, metrics, dashboard = _free_ports(4)
    env = _clean_env() | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    log = temp / "ray-start.log"
    with log.open("w") as out:
        # The workers inherit this environment: PYTHONPATH makes this checkout the ser-tool "installed" on the node.
        proc = subprocess.Popen(
            [str(ray_cli), "start", "--head", "--block", "--num-cpus", "2", "--port", str(port),
             "--dashboard-agent-listen-port", str(agent), "--metrics-export-port", str(metrics),
             "--dashboard-port", str(dashboard), "--include-dashboard=false", "--disable-usage-stats",
             "--temp-dir", str(temp)],
            env=env | {"RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"},  # stop at once on SIGTERM, no 30-s drain
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`ray start --head` started no cluster within 3 minutes:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield port, env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything of ours still in the group
        proc.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_ser_batch_on_a_ray_cluster_started_with_ray_start(ray_head, tmp_path):
    port, env = ray_head
    files = _voices(tmp_path / "in", 3)
    (tmp_path / "in" / "broken.wav").write_bytes(b"RIFF not audio")
    ser = [sys.executable, "-m", "ser_tool.cli", "batch", str(tmp_path / "in")]

    job = subprocess.run([*ser, "--out", str(tmp_path / "ray"), "--engine", "ray", "--address", f"127.0.0.1:{port}"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert job.returncode == 1, job.stderr[-3000:]  # the broken file is an error row; the others are analysed
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert summary["last_run"]["address"] == f"127.0.0.1:{port}" and summary["last_run"]["engine"] == "ray"
    local = run_batch([str(tmp_path / "in")], tmp_path / "local", spec=BackendSpec(), workers=1)
    assert local.processed == 4 and local.failed == 1

    def comparable(folder):
        return {r["path"]: {k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in read_rows(folder)}

    rows = comparable(tmp_path / "ray")
    assert rows == comparable(tmp_path / "local")
    assert sorted(p for p, r in rows.items() if r["error"] is None) == sorted(str(f) for f in files)

    # Without the cluster's token (RAY_AUTH_MODE unset: Ray sends none to an explicit address) the job is
    # refused with what to set, after Ray's own bounded retries (about 20 s), not a hang.
    no_token = {k: v for k, v in env.items() if not k.startswith("RAY_AUTH")}
    t0 = time.monotonic()
    refused = subprocess.run([*ser, "--out", str(tmp_path / "refused"), "--engine", "ray",
                              "--address", f"127.0.0.1:{port}"], env=no_token, capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "token authentication" in refused.stderr and "RAY_AUTH_MODE=token" in refused.stderr
    assert "Traceback" not in refused.stderr and time.monotonic() - t0 < 120
    assert not (tmp_path / "refused" / "summary.json").exists()  # refused before any work


def test_a_wrong_ray_address_is_a_usage_error_in_seconds(tmp_path, capsys, monkeypatch):
    pytest.importorskip("ray.data", reason="the Ray engine needs ray[data] (pip install -e '.[ray]')")
    monkeypatch.setattr("ser_tool.batch.ray_engine.PROBE_SECONDS", 1.0)  # the silent port below waits this long
    _voices(tmp_path / "in", 1)
    closed, = _free_ports(1)
    not_ray = socket.socket()  # listens and says nothing, as a port of some other service might
    not_ray.bind(("127.0.0.1", 0))
    not_ray.listen()
    try:
        for address, says in ((f"127.0.0.1:{closed}", "nothing listens on port"),
                              (f"127.0.0.1:{not_ray.getsockname()[1]}", "is not a Ray head"),
                              ("no-such-host.invalid:6379", "no such host"),
                              ("head-without-port", "is not HOST:PORT")):
            t0 = time.monotonic()
            code = main(["batch", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--engine", "ray",
                         "--address", address])
            err = capsys.readouterr().err
            assert code == 2 and says in err and address in err, err
            assert time.monotonic() - t0 < 30, f"{address}: {time.monotonic() - t0:.0f} s"  # Ray alone waits minutes
    finally:
        not_ray.close()
    assert not (tmp_path / "out" / "summary.json").exists()


# -- crash safety: a killed run loses at most the unwritten part, and a rerun adds no duplicates ---------

def test_resume_after_sigkill_loses_nothing_written_and_duplicates_nothing(tmp_path):
    files = _voices(tmp_path / "in", 40, seconds=3.0)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "ser_tool.cli", "batch", str(tmp_path / "in"), "--out", str(out),
           "--workers", "1", "--part-size", "1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    try:
        while len(list(out.glob("part-*.parquet"))) < 3:
            assert proc.poll() is None, f"ser batch stopped early: {proc.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "ser batch wrote no parts within 4 minutes"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the job and its workers, with no chance to clean up
        proc.wait()
    written = {p.name: p.read_bytes() for p in out.glob("part-*.parquet")}
    done_at_kill = {r["path"]: r["finished_at"] for r in read_rows(out)}
    assert 3 <= len(done_at_kill) < len(files), "the kill came after the job had finished: nothing was tested"

    assert main(["batch", str(tmp_path / "in"), "--out", str(out), "--workers", "1", "--part-size", "7"]) == 0
    rows = read_rows(out, latest=False)
    assert sorted(r["path"] for r in rows) == sorted(str(f) for f in files)  # all there, each once
    assert all(out.joinpath(n).read_bytes() == b for n, b in written.items())  # earlier parts untouched
    assert {r["path"]: r["finished_at"] for r in rows if r["path"] in done_at_kill} == done_at_kill  # not redone
    assert json.loads((out / "summary.json").read_text())["last_run"]["skipped"] == len(done_at_kill)
    assert not leftover_temporaries(out)  # the killed run's half-written part was removed


@pytest.mark.parametrize("engine, sig", [("local", signal.SIGTERM), ("local", signal.SIGINT), ("ray", signal.SIGTERM)],
                         ids=["local-kill", "local-ctrl-c", "ray-kill"])
def test_a_stop_signal_writes_the_finished_rows_and_exits_130(tmp_path, engine, sig):
    if engine == "ray":
        pytest.importorskip("ray.data", reason="the Ray engine needs ray[data] (pip install -e '.[ray]')")
    _voices(tmp_path / "in", 40, seconds=3.0)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "ser_tool.cli", "batch", str(tmp_path / "in"), "--out", str(out), "--workers", "1",
           "--part-size", "2", "--engine", engine]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not list(out.glob("part-*.parquet")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-2000:]
        time.sleep(0.02)
    proc.send_signal(sig)  # the job only, as `kill PID` does (Ctrl-C reaches the whole group; the workers ignore it)
    err = proc.communicate(timeout=120)[1].decode()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted; rerun the same command to continue" in err
    summary = json.loads((out / "summary.json").read_text())
    rows = read_rows(out)
    assert summary["last_run"]["complete"] is False and summary["rows"] == len(rows) == summary["last_run"]["processed"]
    assert 2 <= len(rows) < 40


def test_a_stop_that_lands_between_rows_is_not_lost(tmp_path):
    # A signal's KeyboardInterrupt raised inside a destructor (pyarrow's writer, say) is printed and dropped:
    # the stop must hold anyway. Here the handler runs while the job handles a row, not while it waits.
    _voices(tmp_path / "in", 6)
    stop = StopRequest()

    class StopAtSecondRow(Progress):
        seen = 0

        def row(self, row):
            self.seen += 1
            if self.seen == 2:
                stop.handler(signal.SIGTERM, None)

    result = run_batch([str(tmp_path / "in")], tmp_path / "out", spec=BackendSpec("embedded"), workers=1,
                       part_rows=1, progress=StopAtSecondRow(), stop=stop)
    assert result.interrupted and result.processed == 2
    assert len(read_rows(tmp_path / "out")) == 2
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["last_run"]["complete"] is False


def test_a_stop_does_not_wait_for_the_files_in_flight(tmp_path):
    # The rows of the files still in the workers are not written (a rerun does those files again), so the
    # stop must not wait for them: here one worker is stuck for ten minutes on its file.
    from tests.helpers import StuckFactory

    _voices(tmp_path / "in", 3)
    sf.write(tmp_path / "in" / "stuck.wav", voice(1.0), SR)  # sorts first: in flight from the start
    stop = StopRequest()

    class StopAtFirstRow(Progress):
        def row(self, row):
            stop.handler(signal.SIGINT, None)

    t0 = time.monotonic()
    result = run_batch([str(tmp_path / "in")], tmp_path / "out", spec=BackendSpec("embedded"), workers=2,
                       make_analyzer=StuckFactory(), progress=StopAtFirstRow(), stop=stop)
    assert time.monotonic() - t0 < 300, "the stop waited for the stuck file"  # it sleeps 600 s
    assert result.interrupted and result.processed >= 1
    assert "stuck.wav" not in {Path(r["path"]).name for r in read_rows(tmp_path / "out")}


def test_jsonl_format_and_no_mixing_formats(tmp_path, capsys):
    files = _voices(tmp_path / "in", 2)
    (tmp_path / "in" / "broken.wav").write_bytes(b"nope")
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path / "in"), "--out", str(out), "--format", "jsonl", "--workers", "1"]) == 1
    parts = part_files(out)
    assert parts["parquet"] == [] and len(parts["jsonl"]) == 1
    lines = [json.loads(line) for line in parts["jsonl"][0].read_text().splitlines()]
    assert len(lines) == 3 and all(list(r) == list(ROW_FIELDS) for r in lines)
    ok = [r for r in lines if r["error"] is None]
    assert sorted(r["path"] for r in ok) == sorted(str(f) for f in files)
    assert all(isinstance(r["timeline"], list) and set(PROB_COLUMNS) <= set(r["timeline"][0]) for r in ok)
    assert [r["error_type"] for r in lines if r["error"]] == ["AudioDecodeError"]
    capsys.readouterr()
    assert main(["batch", str(tmp_path / "in"), "--out", str(out)]) == 2  # parquet into a jsonl folder
    assert "the jsonl format to resume it" in capsys.readouterr().err


def test_a_file_that_kills_its_worker_becomes_an_error_row(tmp_path):
    from tests.helpers import CrashingFactory
    from ser_tool.backends import BackendSpec

    _voices(tmp_path / "in", 5)
    sf.write(tmp_path / "in" / "crash.wav", voice(1.0), SR)
    result = run_batch([str(tmp_path / "in")], tmp_path / "out", spec=BackendSpec("embedded"), workers=2,
                       make_analyzer=CrashingFactory())
    rows = {Path(r["path"]).name: r for r in read_rows(tmp_path / "out", latest=False)}
    assert len(rows) == 6 and result.processed == 6 and result.failed == 1
    assert rows["crash.wav"]["error_type"] == "WorkerCrashed" and "worker process died" in rows["crash.wav"]["error"]
    assert all(r["error"] is None and r["model_id"] == "fake-loudness" for n, r in rows.items() if n != "crash.wav")


def test_a_model_that_cannot_load_stops_the_job_with_exit_3(tmp_path, capsys):
    _voices(tmp_path / "in", 1)
    code = main(["batch", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--workers", "1",
                 "--backend", "hf", "--model", str(tmp_path / "no-model"), "--offline"])
    assert code == 3 and "does not exist" in capsys.readouterr().err
    assert read_rows(tmp_path / "out") == []  # no rows that only say the model was missing


# -- speakers: extra columns only when asked for, the same rows from both engines -------------------------

def _conversations(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, f0s in (("call_a.wav", (110.0, 230.0, 110.0)), ("call_b.wav", (230.0, 110.0))):
        parts = [silence(0.5)]
        for f0 in f0s:
            parts += [voice(3.0, f0=f0), silence(1.0)]
        sf.write(folder / name, np.concatenate(parts), SR)
    (folder / "broken.wav").write_bytes(b"nope")


def test_speaker_columns_when_speakers_are_asked_for(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from ser_tool import speakers

    # one worker runs in this process: the stand-in speaker encoder it installs must not outlive the test
    monkeypatch.setattr(speakers, "_ENCODER", speakers._ENCODER)

    from tests.helpers import SpeakerFactory
    from ser_tool.analyzer import AnalysisOptions
    from ser_tool.backends import BackendSpec
    from ser_tool.batch import SPEAKER_FIELDS, row_fields

    _conversations(tmp_path / "in")
    options = AnalysisOptions(speakers=2)
    result = run_batch([str(tmp_path / "in")], tmp_path / "out", spec=BackendSpec("embedded"), options=options,
                       workers=1, make_analyzer=SpeakerFactory(options))
    assert result.processed == 3 and result.failed == 1 and result.summary["last_run"]["speakers"] == 2
    schema = pq.read_schema(part_files(tmp_path / "out")["parquet"][0])
    assert schema.names == list(row_fields(speakers=True)) == [*ROW_FIELDS, *SPEAKER_FIELDS]
    assert schema.field("timeline").type.value_type.field("speaker").type == pa.int64()
    assert schema.field("speakers").metadata[b"description"].decode() == SPEAKER_FIELDS["speakers"][1]
    rows = {Path(r["path"]).name: r for r in read_rows(tmp_path / "out")}
    for name in ("call_a.wav", "call_b.wav"):
        r = rows[name]
        assert r["speaker_count"] == 2 and [s["speaker"] for s in r["speakers"]] == [1, 2]
        assert sum(s["share"] for s in r["speakers"]) == pytest.approx(1.0, abs=0.01)
        for s in r["speakers"]:
            assert sum(s[c] for c in PROB_COLUMNS) == pytest.approx(1.0, abs=1e-3) and s["turns"] >= 1
        speech = [seg for seg in r["timeline"] if seg["speech"]]
        assert {seg["speaker"] for seg in speech} == {1, 2}
        assert all(seg["speaker"] is None for seg in r["timeline"] if not seg["speech"])
    assert rows["call_a.wav"]["speakers"][0]["turns"] == 2 and rows["call_b.wav"]["speakers"][0]["turns"] == 1
    assert rows["broken.wav"]["speakers"] is None and rows["broken.wav"]["speaker_count"] is None
    assert read_table(tmp_path / "out").schema.names == schema.names

    # batch-report: a table per speaker (numbered by who speaks first), tallied from the rows
    from ser_tool.batch.batch_report import overview, render_markdown

    ov = overview(tmp_path / "out")
    assert ov.speaker_counts == {2: 2} and sum(ov.speaker_emotions[1].values()) == 2
    assert ov.speaker_seconds[1] == pytest.approx(sum(rows[n]["speakers"][0]["speaking_time"] for n in ("call_a.wav", "call_b.wav")))
    differ = sum(rows[n]["speakers"][0]["emotion"] != rows[n]["speakers"][1]["emotion"] for n in ("call_a.wav", "call_b.wav"))
    text = render_markdown(ov)
    assert "## Expressed emotion per speaker" in text and f"in {differ} of the 2 recordings with several speakers" in text

    # The Ray engine's actor builds its rows with the same function, in the same columns (run here without Ray).
    from ser_tool.batch.ray_engine import _AnalyzerActor

    recs = [{"i": k, "path": r["path"], "source": r["source"], "size_bytes": r["size_bytes"], "mtime_ns": r["mtime_ns"]}
            for k, r in enumerate(rows.values())]
    table = _AnalyzerActor(SpeakerFactory(options))(pa.Table.from_pylist(recs))
    assert table.column("fatal").to_pylist() == [None] * 3
    ray_rows = {Path(r["path"]).name: r for r in table.drop_columns(["i", "fatal"]).to_pylist()}
    for name, r in rows.items():
        assert {k: v for k, v in ray_rows[name].items() if k not in TIMING_COLUMNS} == \
               {k: v for k, v in r.items() if k not in TIMING_COLUMNS}, name


def test_ser_batch_speakers_flag_reaches_the_job_and_default_rows_are_unchanged(tmp_path, monkeypatch, capsys):
    import ser_tool.batch.job as job

    seen = {}

    def fake_run_batch(inputs, out, *, options, **kwargs):
        seen["speakers"] = options.speakers
        raise ConfigError("stop here")

    monkeypatch.setattr(job, "run_batch", fake_run_batch)
    assert main(["batch", str(tmp_path), "--out", str(tmp_path / "o"), "--speakers", "auto"]) == 2
    assert seen["speakers"] == "auto" and "stop here" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["batch", str(tmp_path), "--out", str(tmp_path / "o"), "--speakers", "9"])
    assert "'auto' or a number" in capsys.readouterr().err
    from ser_tool.batch.rows import arrow_schema

    assert arrow_schema().names == list(ROW_FIELDS)  # no speakers: exactly the columns as before
    assert "speaker" not in arrow_schema().field("timeline").type.value_type.names
