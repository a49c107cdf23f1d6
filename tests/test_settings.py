"""One Settings for every entry point: the same model flags everywhere (`add_model_flags`), flags over SER_*
environment over an entry point's defaults, and the settings that used to be dropped now reach the model
(ser-mcp: SER_THREADS; ser-agent: SER_WINDOW, SER_VAD, SER_DEVICE, SER_OFFLINE; ser-eval cpbench: the SER model)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import soundfile as sf

from agents.testing import ScriptedChatModel
from ser_tool import AnalysisOptions, AudioLimits, BackendSpec, ConfigError, SegmentationOptions, Settings, add_model_flags
from ser_tool.testing import SR, silence, voice


pytestmark = pytest.mark.usefixtures("no_ser_env")


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "voice.wav"
    sf.write(path, np.concatenate([voice(3.0, amp=0.4), silence(1.0), voice(3.0, amp=0.1)]), SR)
    return path


# -- one set of model flags ------------------------------------------------------------------------------

def _ser():
    from ser_tool.cli import build_parser

    return build_parser()


def _mcp():
    from mcp_server.cli import build_parser

    return build_parser()


def _agent():
    from agents.cli import build_parser

    return build_parser()


def _eval():
    from evals.cli import build_parser

    return build_parser()


# (entry point, parser, the arguments before the flags, the emotion model's flag, segmentation flags?, ASR flags?)
ENTRY_POINTS = [
    ("ser analyze", _ser, ["analyze", "a.wav"], "--model", True, False),
    ("ser transcribe", _ser, ["transcribe", "a.wav"], "--model", True, True),
    ("ser-mcp", _mcp, [], "--model", True, True),
    ("ser-agent chat", _agent, ["chat"], "--ser-model", True, True),
    ("ser-agent ask", _agent, ["ask", "q?"], "--ser-model", True, True),
    ("ser-eval ser", _eval, ["ser", "data"], "--model", False, False),
    ("ser-eval cpbench run", _eval, ["cpbench", "run", "qa.jsonl"], "--ser-model", True, True),
]
MODEL_FLAGS = ["--backend", "hf", "--device", "cuda:1", "--batch-size", "3", "--threads", "2", "--precision", "bfloat16",
               "--offline", "--label-map", "joy=happy,other=", "--trust-remote-code"]
ANALYSIS_FLAGS = ["--window", "4", "--hop", "2", "--vad", "energy", "--vad-floor-db", "-90", "--max-duration", "60",
                  "--max-file-mb", "5"]
ASR_FLAGS = ["--asr-model", "whisper-dir", "--language", "de"]


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=[e[0] for e in ENTRY_POINTS])
def test_every_entry_point_takes_the_same_model_flags_to_the_same_settings(entry):
    _, parser, head, model_flag, analysis, asr = entry
    argv = head + MODEL_FLAGS + [model_flag, "/models/x"] + (ANALYSIS_FLAGS if analysis else []) + (ASR_FLAGS if asr else [])
    cfg = Settings.from_args(parser().parse_args(argv))
    assert cfg.backend_spec() == BackendSpec("hf", "/models/x", "cuda:1", True, {"joy": "happy", "other": None}, True, 2,
                                             "bfloat16")
    if analysis:
        assert cfg.analysis_options() == AnalysisOptions(SegmentationOptions(window=4, hop=2, vad="energy", vad_floor_db=-90),
                                                         AudioLimits(max_duration=60, max_file_bytes=5 * 2**20), batch_size=3)
    if asr:
        assert (cfg.asr_model, cfg.language) == ("whisper-dir", "de")


def test_the_model_flags_are_declared_once_in_one_place():
    """Every parser's emotion-model options are exactly add_model_flags' (no entry point adds its own)."""
    reference = argparse.ArgumentParser()
    add_model_flags(reference, asr=True)
    expected = {a.dest: a.option_strings for a in reference._actions if a.dest != "help"}
    for name, parser, head, model_flag, analysis, asr in ENTRY_POINTS:
        p = parser()
        for step in head[:2]:  # into the subcommand's parser
            sub = next((a for a in p._actions if isinstance(a, argparse._SubParsersAction)), None)
            if sub is None or step not in sub.choices:
                break
            p = sub.choices[step]
        seen = {a.dest: a.option_strings for a in p._actions if a.dest in expected}
        want = {d: ([model_flag] if d == "model" else f) for d, f in expected.items()
                if (analysis or d not in ("window", "hop", "vad", "vad_floor_db", "max_duration", "max_file_mb", "max_windows"))
                and (asr or d not in ("asr_model", "language"))}
        assert seen == want, name


def _sub(parser, *steps):
    for step in steps:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[step]
    return parser


def test_speakers_is_a_shared_setting_of_the_commands_that_analyse_recordings(monkeypatch):
    """--speakers comes from add_model_flags on ser analyze, transcribe and batch (SER_SPEAKERS everywhere)."""
    for command, head in (("analyze", ["analyze", "a.wav"]), ("transcribe", ["transcribe", "a.wav"]),
                          ("batch", ["batch", "in/", "--out", "o/"])):
        assert any(a.dest == "speakers" for a in _sub(_ser(), command)._actions), command
        assert Settings.from_args(_ser().parse_args(head)).analysis_options().speakers is None
        assert Settings.from_args(_ser().parse_args(head + ["--speakers", "2"])).analysis_options().speakers == 2
        assert Settings.from_args(_ser().parse_args(head + ["--speakers", "AUTO"])).speakers == "auto"
    for name, parser, head, *_ in ENTRY_POINTS:  # where it is not declared, no flag
        if not name.startswith("ser "):
            with pytest.raises(SystemExit):
                parser().parse_args(head + ["--speakers", "2"])
    monkeypatch.setenv("SER_SPEAKERS", "3")
    assert Settings.from_args(_ser().parse_args(["analyze", "a.wav"])).analysis_options().speakers == 3
    assert Settings.from_args(_ser().parse_args(["analyze", "a.wav", "--speakers", "auto"])).speakers == "auto"
    monkeypatch.setenv("SER_SPEAKERS", "many")
    with pytest.raises(ConfigError, match=r"--speakers / SER_SPEAKERS: speakers must be 'auto' or a number from 1 to 8"):
        Settings.from_args(_ser().parse_args(["analyze", "a.wav"]))


# -- where values come from ------------------------------------------------------------------------------

def test_flags_beat_the_environment_which_beats_the_entry_points_defaults(monkeypatch):
    parser = argparse.ArgumentParser()
    add_model_flags(parser, defaults={"vad": "energy", "batch_size": 16})
    assert "default energy" in parser.format_help() and "default 16" in parser.format_help()
    cfg = Settings.from_args(parser.parse_args([]))
    assert (cfg.vad, cfg.batch_size, cfg.window) == ("energy", 16, 10.0)
    monkeypatch.setenv("SER_VAD", "webrtc")
    monkeypatch.setenv("SER_BATCH_SIZE", "4")
    monkeypatch.setenv("SER_WINDOW", "3")
    cfg = Settings.from_args(parser.parse_args([]))
    assert (cfg.vad, cfg.batch_size, cfg.window) == ("webrtc", 4, 3.0)
    cfg = Settings.from_args(parser.parse_args(["--vad", "energy", "--batch-size", "2", "--window", "5"]))
    assert (cfg.vad, cfg.batch_size, cfg.window) == ("energy", 2, 5.0)


def test_bad_values_name_the_flag_and_the_variable(monkeypatch):
    parser = argparse.ArgumentParser()
    add_model_flags(parser, model_flag="--ser-model")
    with pytest.raises(ConfigError, match=r"--window / SER_WINDOW: the analysis window must be 0.5 to 60 seconds \(got -1.0\)"):
        Settings.from_args(parser.parse_args(["--window", "-1"]))
    with pytest.raises(ConfigError, match="--label-map / SER_LABEL_MAP: label map entry 'joy' needs the form"):
        Settings.from_args(parser.parse_args(["--label-map", "joy"]))
    monkeypatch.setenv("SER_BATCH_SIZE", "0")
    with pytest.raises(ConfigError, match="--batch-size / SER_BATCH_SIZE: .* \\(got '0'\\)"):
        Settings.from_args(parser.parse_args([]))
    monkeypatch.delenv("SER_BATCH_SIZE")
    monkeypatch.setenv("SER_PRECISION", "half")
    with pytest.raises(ConfigError, match="--precision / SER_PRECISION: .*'auto', 'float32' or 'bfloat16'"):
        Settings.from_args(parser.parse_args([]))
    monkeypatch.setenv("SER_PRECISION", "float32")
    assert Settings.from_args(parser.parse_args([])).backend_spec().precision == "float32"
    assert Settings.from_args(parser.parse_args(["--precision", "bfloat16"])).backend_spec().precision == "bfloat16"
    monkeypatch.delenv("SER_PRECISION")
    assert Settings.from_args(parser.parse_args([])).backend_spec().precision == "auto"
    with pytest.raises(ValueError, match="no setting named windw"):
        add_model_flags(argparse.ArgumentParser(), defaults={"windw": 3})


# -- the settings each entry point used to drop -----------------------------------------------------------

def test_ser_mcp_honours_ser_threads(monkeypatch, tiny_hf):
    from mcp_server.cli import build_parser
    from mcp_server.pool import ModelPool
    from mcp_server.settings import ServerSettings

    import numpy as np
    import torch

    for name, value in {"SER_THREADS": "3", "SER_BACKEND": "hf", "SER_MODEL": tiny_hf, "SER_OFFLINE": "1",
                        "SER_EXTRA_BACKENDS": "meralion=/models/m"}.items():
        monkeypatch.setenv(name, value)
    settings = ServerSettings.from_args(build_parser().parse_args([]))
    assert {name: spec.threads for name, spec in settings.backend_specs().items()} == {"hf": 3, "meralion": 3}
    backend = ModelPool(settings.backend_specs(), settings.analysis_options()).backend("hf")  # what the server loads
    threads: list[int] = []
    model = backend.model  # the hf backend's torch module: record the thread count inside its forward pass
    model.register_forward_pre_hook(lambda *_: threads.append(torch.get_num_threads()))
    backend.predict([np.zeros(16000, dtype=np.float32)])
    assert threads == [3]
    assert ServerSettings.from_args(build_parser().parse_args(["--threads", "2"])).backend_spec().threads == 2


@pytest.fixture
def pipelines(monkeypatch):
    """Every AffectPipeline ser-agent builds, with the answer of its last run."""
    from agents.pipeline import AffectPipeline

    made = []

    class Recorded(AffectPipeline):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

        def run(self, *args, **kwargs):
            self.last = super().run(*args, **kwargs)
            return self.last

    monkeypatch.setattr("agents.pipeline.AffectPipeline", Recorded)
    return made


def test_ser_agent_honours_ser_window_vad_and_the_model_settings(wav, tiny_hf, monkeypatch, pipelines, one_thread):
    from agents.cli import main

    for name, value in {"SER_BACKEND": "hf", "SER_MODEL": tiny_hf, "SER_OFFLINE": "1", "SER_WINDOW": "2",
                        "SER_VAD": "energy", "SER_THREADS": "1"}.items():
        monkeypatch.setenv(name, value)
    code = main(["ask", "--audio", str(wav), "--transcript", "hello there", "How do they sound?"],
                model=ScriptedChatModel(replies=["Calm."]))
    assert code == 0
    (pipeline,) = pipelines
    assert pipeline.analyzer.spec == BackendSpec("hf", tiny_hf, "cpu", True, None, False, 1)
    assert pipeline.analyzer.options.segmentation == SegmentationOptions(window=2.0, vad="energy")
    report = pipeline.last.perception.report
    assert (report.backend, report.model_id, report.window) == ("hf", tiny_hf, 2.0)
    assert report.timeline and max(s.end - s.start for s in report.timeline) <= 2.0 + 1e-6


def test_ser_agent_honours_ser_device(wav, tiny_hf, monkeypatch, pipelines, capsys):
    from agents.cli import main

    monkeypatch.setenv("SER_DEVICE", "cuda:7")
    code = main(["ask", "--audio", str(wav), "--backend", "hf", "--ser-model", tiny_hf, "--offline", "q?"],
                model=ScriptedChatModel(replies=["x"]))
    assert pipelines[0].analyzer.spec.device == "cuda:7"
    assert code == 2 and "cuda:7" in capsys.readouterr().err  # this machine has no 8th GPU: a clear refusal


def test_ser_eval_cpbench_picks_the_ser_model(tmp_path, tiny_hf, monkeypatch, one_thread):
    from tests.helpers import write_qa
    from evals import cli
    from evals.cpbench import runner

    given = {}

    def evaluate(samples, model, **kwargs):  # the real run, with a rule-based model in place of "local"
        given.update(kwargs, model=model)
        return runner_evaluate(samples, ScriptedChatModel(rule=lambda text: "A"), **kwargs)

    runner_evaluate = runner.evaluate
    monkeypatch.setattr(runner, "evaluate", evaluate)
    qa = write_qa(tmp_path / "data", n=1)
    argv = ["cpbench", "run", str(qa), "--mc", "--modes", "predicted", "--out", str(tmp_path / "out"),
            "--backend", "hf", "--ser-model", tiny_hf, "--offline", "--threads", "1"]
    assert cli.main(argv) == 0
    analyzer = given["analyzer"]
    assert given["model"] == "local"  # --model stays the answering chat model
    assert analyzer.spec == BackendSpec("hf", tiny_hf, "cpu", True, None, False, 1)
    assert analyzer.options.segmentation.vad == "energy"  # cpbench's default for short clips
    assert analyzer.backend.model_id == tiny_hf  # the run analysed with it
    monkeypatch.setenv("SER_VAD", "webrtc")
    monkeypatch.setenv("SER_BACKEND", "embedded")
    assert cli.main(["cpbench", "run", str(qa), "--mc", "--modes", "none", "--out", str(tmp_path / "out2")]) == 0
    assert given["analyzer"].spec.name == "embedded" and given["analyzer"].options.segmentation.vad == "webrtc"


def test_asr_model_help_says_what_each_entry_point_uses_without_one():
    """Where no recogniser is named, transcribe, the MCP server and the agent's chat/ask use the offline one; the
    benchmark runner uses the dataset's transcripts. Each --asr-model help says so (see the README's table)."""
    def help_of(entry):
        name, parser, head, *_ = next(e for e in ENTRY_POINTS if e[0] == entry)
        p = parser()
        for step in head[:2]:
            sub = next((a for a in p._actions if isinstance(a, argparse._SubParsersAction)), None)
            if sub is None or step not in sub.choices:
                break
            p = sub.choices[step]
        return next(a.help for a in p._actions if a.dest == "asr_model")

    for entry in ("ser transcribe", "ser-mcp", "ser-agent chat", "ser-agent ask"):
        assert "default: the offline Whisper-base when the [asr] extra is installed" in help_of(entry), entry
    assert "default: none - the dataset's own transcripts are used" in help_of("ser-eval cpbench run")
