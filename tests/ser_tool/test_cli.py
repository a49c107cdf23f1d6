import json
import subprocess
import sys

import jsonschema
import numpy as np
import pytest
import soundfile as sf

from ser_tool import report_json_schema
from ser_tool.cli import main
from ser_tool.testing import SR, FakeBackend, silence, voice


@pytest.fixture
def hf_args(tiny_hf):
    return ["--backend", "hf", "--model", tiny_hf, "--offline"]


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_help_does_not_import_torch():
    code = "import sys; from ser_tool.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"


def test_console_script_version_and_help():
    out = subprocess.run(["ser", "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("ser-tool ")
    out = subprocess.run(["ser", "analyze", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--timeline" in out and "--batch-size" in out and "--device" in out


def test_schema_command(capsys):
    code, out, _ = _run(["schema"], capsys)
    assert code == 0 and json.loads(out) == report_json_schema()


def test_default_backend_fails_clearly_without_its_weights(sample_path, tmp_path, monkeypatch, capsys):
    from ser_tool.backends import embedded, voice

    monkeypatch.setattr(voice, "shipped_model_dir", lambda: tmp_path / "no-voice")
    code, out, err = _run(["analyze", str(sample_path)], capsys)
    assert code == 3 and out == ""
    assert "'voice' backend needs a model" in err and "--model" in err
    monkeypatch.setattr(embedded, "default_model_dir", lambda: tmp_path)
    code, out, err = _run(["analyze", str(sample_path), "--backend", "embedded"], capsys)
    assert code == 3 and out == ""
    assert "no embedded model" in err and "--backend" in err


def test_default_analysis_of_the_bundled_sample(sample_path, capsys):
    code, out, err = _run(["analyze", str(sample_path)], capsys)
    assert code == 0, err
    assert "[voice: ser-tool/voice]" in out and "valence" in out
    code, out, err = _run(["analyze", str(sample_path), "--backend", "embedded"], capsys)  # the compact model stays
    assert code == 0 and "[embedded: ser-tool/embedded]" in out


def test_text_output(sample_path, hf_args, capsys):
    code, out, err = _run(["analyze", str(sample_path), *hf_args, "--timeline"], capsys)
    assert code == 0, err
    assert "expressed emotion:" in out and "neutral" in out and "timeline:" in out and "(no speech)" in out
    assert "not what the speaker actually feels" in " ".join(out.split())  # the text is wrapped


def test_json_output_validates_against_the_schema(sample_path, hf_args, capsys):
    code, out, _ = _run(["analyze", str(sample_path), *hf_args, "--json"], capsys)
    assert code == 0
    (doc,) = json.loads(out)  # a list even for one file: one shape for any number of files
    jsonschema.validate(doc, report_json_schema())
    assert doc["backend"] == "hf" and doc["timeline"]  # the 10.9-s sample is longer than one 10-s window
    assert sum(doc["overall"]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def test_batch_mode_reports_bad_files_at_the_end(tmp_path, sample_path, hf_args, capsys):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    quiet = tmp_path / "silence.wav"
    sf.write(quiet, silence(3), SR)
    files = [str(sample_path), str(bad), str(tmp_path / "missing.wav"), str(quiet), str(sample_path)]
    code, out, err = _run(["analyze", *files, *hf_args, "--jsonl"], capsys)
    assert code == 1
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 5
    assert [("error" in d) for d in lines] == [False, True, True, True, False]
    assert lines[1]["error"]["type"] == "AudioDecodeError"
    assert lines[2]["error"]["type"] == "AudioNotFoundError"
    assert lines[3]["error"]["type"] == "NoSpeechError"
    assert "3 of 5 file(s) failed" in err and "notes.wav" in err


def test_each_failed_file_is_one_line_naming_it_once(tmp_path, monkeypatch, capsys):
    """The common failures - missing, empty, not audio, a folder, silence - each get one line that names the file
    once (the messages name their file; the list used to put the name in front again: 'a.wav: a.wav: ...')."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "corrupt.wav").write_text("not audio")
    (tmp_path / "folder").mkdir()
    sf.write(tmp_path / "quiet.wav", silence(3), SR)
    (tmp_path / "junk.mp3").write_bytes(bytes(range(256)) * 20)
    names = ["missing.wav", "empty.wav", "corrupt.wav", "folder", "quiet.wav", "junk.mp3"]
    code, out, err = _run(["analyze", *names], capsys)
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert lines[0] == f"ser: {len(names)} of {len(names)} file(s) failed:" and len(lines) == len(names) + 1, err
    for name, line in zip(names, lines[1:]):
        assert line.count(name) - line.count(f"'{name}/*.wav'") == 1, line  # a folder's hint shows its glob
        assert f"{name}: {name}" not in line
    assert "missing.wav: no such file" in lines[1] and "empty.wav is an empty file" in lines[2]
    for name in names:  # one file: one line
        code, out, err = _run(["analyze", name], capsys)
        assert code == 1 and len(err.splitlines()) == 1 and err.startswith("ser: error: ") and name in err, err
        assert err.count(name) - err.count(f"'{name}/*.wav'") == 1, err


def test_a_failure_whose_message_does_not_name_the_file_is_prefixed_with_it():
    from ser_tool.describe import file_failure

    assert file_failure("a.wav", "a.wav is an empty file") == "a.wav is an empty file"
    assert file_failure("a.wav", "no speech detected in a.wav (3 s of audio)") == "no speech detected in a.wav (3 s of audio)"
    assert file_failure("a", "is a directory") == "a: is a directory"  # a name that is only a word of the message
    assert file_failure("a.wav", "cannot decode a.wav.bak") == "a.wav: cannot decode a.wav.bak"
    assert file_failure("x.wav", "internal error") == "x.wav: internal error"
    assert file_failure("new\nline.wav", "boom") == "new\\nline.wav: boom"  # escaped for the terminal


def test_json_with_several_files_is_a_list(sample_path, hf_args, capsys):
    code, out, _ = _run(["analyze", str(sample_path), str(sample_path), *hf_args, "--json"], capsys)
    assert code == 0 and isinstance(json.loads(out), list) and len(json.loads(out)) == 2


def test_json_is_a_list_for_any_number_of_files(tmp_path, sample_path, hf_args, capsys):
    """--json: always a list (one file, several, or none analysed); --jsonl: one object per line."""
    code, out, _ = _run(["analyze", str(sample_path), *hf_args, "--json"], capsys)
    assert code == 0 and [d["source"] for d in json.loads(out)] == [str(sample_path)]
    code, out, err = _run(["analyze", str(tmp_path / "missing.wav"), *hf_args, "--json"], capsys)
    assert code == 1 and json.loads(out) == [] and "no such file" in err
    code, out, _ = _run(["analyze", str(sample_path), *hf_args, "--jsonl"], capsys)
    assert code == 0 and json.loads(out)["source"] == str(sample_path)  # one file, one line: the report itself


def test_the_progress_bar_shows_speech_detection_before_windows(tmp_path):
    """On a long recording, finding speech takes seconds before any window is planned: the bar shows that
    pass (seconds of audio) instead of '0win', then the windows."""
    import io

    from ser_tool import Analyzer
    from ser_tool.cli import FileProgress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    path = _sf(tmp_path / "long.wav", np.concatenate([voice(40.0), silence(30.0), voice(25.0)]))
    screen = Terminal()
    bar = FileProgress(str(path), file=screen)
    events = []
    scan = lambda done, total: events.append(("scan", done, total)) or bar.scan(done, total)  # noqa: E731
    windows = lambda done, total: events.append(("win", done, total)) or bar.windows(done, total)  # noqa: E731
    Analyzer(FakeBackend()).analyze(str(path), progress=windows, scan_progress=scan)
    bar.close()
    kinds = [e[0] for e in events]
    assert kinds.index("win") == kinds.count("scan")  # every scan report comes before the first window
    scanned = [e[1] for e in events if e[0] == "scan"]
    assert scanned == sorted(scanned) and len(scanned) == 4 and scanned[-1] == pytest.approx(95.0)
    assert all(e[2] == pytest.approx(95.0) for e in events if e[0] == "scan")
    text = screen.getvalue()
    assert "finding speech" in text and "/95" in text  # seconds of audio while speech is found
    assert text.index("finding speech") < text.index("win")
    assert f"{events[-1][1]}/{events[-1][2]}" in text  # then the windows, to the last one


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda d: d, "is a directory"),
        (lambda d: d / "nope.wav", "no such file"),
        (lambda d: _write(d / "empty.wav", b""), "empty file"),
        (lambda d: _write(d / "junk.mp3", bytes(range(256)) * 40), "not an audio file"),
        (lambda d: _sf(d / "zero.wav", np.zeros(0, np.float32)), "no audio samples"),
        (lambda d: _sf(d / "nan.wav", np.full(SR, np.nan, np.float32), subtype="FLOAT"), "NaN or infinite"),
        (lambda d: _sf(d / "silence.wav", silence(2)), "silent"),
    ],
)
def test_bad_input_gets_a_specific_message_and_exit_1(tmp_path, hf_args, capsys, make, message):
    path = make(tmp_path)
    code, out, err = _run(["analyze", str(path), *hf_args], capsys)
    assert code == 1 and out == ""
    assert message in err


def test_too_long_file_is_refused(tmp_path, hf_args, capsys):
    path = _sf(tmp_path / "long.wav", voice(5))
    code, _, err = _run(["analyze", str(path), *hf_args, "--max-duration", "2"], capsys)
    assert code == 1 and "limit is 0:02" in err


@pytest.mark.parametrize("flags", [["--window", "-1"], ["--window", "5", "--hop", "9"], ["--batch-size", "0"], ["--label-map", "joy"]])
def test_bad_settings_exit_2(sample_path, hf_args, capsys, flags):
    code, _, err = _run(["analyze", str(sample_path), *hf_args, *flags], capsys)
    assert code == 2 and "ser: error:" in err


def test_environment_settings_are_read(sample_path, tiny_hf, monkeypatch, capsys):
    monkeypatch.setenv("SER_BACKEND", "hf")
    monkeypatch.setenv("SER_MODEL", tiny_hf)
    monkeypatch.setenv("SER_OFFLINE", "1")
    code, out, err = _run(["analyze", str(sample_path), "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)[0]["model_id"] == tiny_hf


def test_missing_hf_model_exits_3(sample_path, tmp_path, capsys):
    code, _, err = _run(["analyze", str(sample_path), "--backend", "hf", "--model", str(tmp_path / "no-model"), "--offline"], capsys)
    assert code == 3 and "no-model" in err


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _sf(path, x, subtype="PCM_16"):
    sf.write(path, x, SR, subtype=subtype)
    return path
