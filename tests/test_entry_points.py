"""What every command line promises beyond its own job: numeric flags out of range are refused with a clear
message (exit 2), and a reader that closes stdout early (`ser analyze ... | head -1`) ends the program
quietly with exit code 141, without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ser_tool.testing import make_toy_corpus
from tests.helpers import REPO, SAMPLE


pytestmark = pytest.mark.usefixtures("no_ser_env")


def _main(program: str):
    if program == "ser":
        from ser_tool.cli import main
    elif program == "ser-eval":
        from evals.cli import main
    elif program == "ser-agent":
        from agents.cli import main
    else:
        from mcp_server.cli import main
    return main


# Flags that are not settings: argparse refuses them before anything runs.
REFUSED_BY_ARGPARSE = [
    ("ser", ["train", "d", "--batch-size", "1"], "--batch-size: expected a whole number of at least 2, got '1'"),
    ("ser", ["train", "d", "--lr", "0"], "--lr: expected a number above 0, got '0'"),
    ("ser", ["train", "d", "--corpus-cap", "0"], "--corpus-cap: expected a whole number of at least 1"),
    ("ser", ["train", "d", "--seed", "-1"], "--seed: expected a whole number of at least 0"),
    ("ser", ["train", "d", "--threads", "100000"], "--threads: expected a whole number from 0 to 256, got '100000'"),
    ("ser", ["schema", "--indent", "-1"], "--indent: expected a whole number from 0 to 16"),
    ("ser-eval", ["ser", "d", "--limit", "0"], "--limit: expected a whole number of at least 1, got '0'"),
    ("ser-eval", ["cpbench", "generate", "--out", "o", "--n-clips", "-5"], "--n-clips: expected a whole number of at least 1, got '-5'"),
    ("ser-eval", ["cpbench", "generate", "--out", "o", "--choices", "1"], "--choices: expected a whole number from 2 to 4"),
    ("ser-eval", ["cpbench", "generate", "--out", "o", "--seed", "-3"], "--seed: expected a whole number of at least 0"),
    ("ser-eval", ["cpbench", "run", "qa.jsonl", "--limit", "-1"], "--limit: expected a whole number of at least 1, got '-1'"),
    ("ser-eval", ["cpbench", "run", "qa.jsonl", "--concurrency", "0"], "--concurrency: expected a whole number from 1 to 256"),
    ("ser-eval", ["cpbench", "run", "qa.jsonl", "--temperature", "-0.1"], "--temperature: expected a number of at least 0"),
    ("ser-eval", ["cpbench", "run", "qa.jsonl", "--judge-temperature", "nan"], "--judge-temperature: expected a number of at least 0"),
    ("ser-agent", ["ask", "q", "--temperature", "-1"], "--temperature: expected a number of at least 0, got '-1'"),
    ("ser-agent", ["chat", "--temperature", "warm"], "--temperature: expected a number of at least 0, got 'warm'"),
]


@pytest.mark.parametrize("program,argv,message", REFUSED_BY_ARGPARSE, ids=[" ".join(c[1][:2] + c[1][-2:]) for c in REFUSED_BY_ARGPARSE])
def test_numeric_flags_out_of_range_are_refused(program, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        _main(program)(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


# Flags that are settings: Settings checks them (the same bounds hold for their SER_ variable).
REFUSED_BY_SETTINGS = [
    ("ser", ["analyze", "a.wav", "--max-duration", "0"], "--max-duration / SER_MAX_DURATION"),
    ("ser-mcp", ["--max-concurrent", "0"], "--max-concurrent / SER_MAX_CONCURRENT"),
    ("ser-mcp", ["--max-batch-files", "0"], "--max-batch-files / SER_MAX_BATCH_FILES"),
    ("ser-mcp", ["--port", "70000"], "--port / SER_PORT"),
    ("ser-mcp", ["--url-timeout", "0"], "--url-timeout / SER_URL_TIMEOUT"),
    ("ser-mcp", ["--max-inline-mb", "-1"], "--max-inline-mb / SER_MAX_INLINE_MB"),
    ("ser-eval", ["ser", "d", "--batch-size", "0"], "--batch-size / SER_BATCH_SIZE"),
    ("ser-eval", ["cpbench", "run", "qa.jsonl", "--mc", "--window", "0"], "--window / SER_WINDOW"),
    ("ser-agent", ["ask", "q", "--max-file-mb", "0"], "--max-file-mb / SER_MAX_FILE_MB"),
]


@pytest.mark.parametrize("program,argv,message", REFUSED_BY_SETTINGS, ids=[f"{c[0]} {c[1][-2]}" for c in REFUSED_BY_SETTINGS])
def test_numeric_settings_out_of_range_are_refused(program, argv, message, capsys):
    assert _main(program)(argv) == 2
    err = capsys.readouterr().err
    assert f"{program}: error: invalid settings: {message}" in err and "Traceback" not in err


def run_with_closed_stdout(*args: str, unbuffered: bool = False) -> subprocess.CompletedProcess:
    """Run `python -m ARGS` with a stdout pipe whose reader has already gone (what `| head -1` leaves);
    stdout block-buffered as for a user, or unbuffered (every print hits the pipe at once)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SER_") and k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    try:
        return subprocess.run([sys.executable, "-m", *args], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              env=env, cwd=REPO, timeout=300)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("args", [("ser_tool.cli", "schema"), ("ser_tool.cli", "--help"), ("evals.cli", "--help"),
                                  ("agents.cli", "--help"), ("evals.cli",)], ids=" ".join)
def test_a_closed_stdout_ends_quietly(args):
    proc = run_with_closed_stdout(*args)
    assert (proc.returncode, proc.stderr) == (141, "")


def test_a_closed_unbuffered_stdout_ends_quietly():
    proc = run_with_closed_stdout("ser_tool.cli", "schema", unbuffered=True)
    assert (proc.returncode, proc.stderr) == (141, "")


def test_ser_eval_into_a_closed_pipe(tmp_path, tiny_hf):
    corpus = make_toy_corpus(tmp_path / "toy", n_speakers=2)
    proc = run_with_closed_stdout("evals.cli", "ser", str(corpus), "--split", "all", "--no-baseline", "--out", str(tmp_path / "out"),
                                  "--backend", "hf", "--model", tiny_hf, "--offline")
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
    assert (tmp_path / "out" / "report.json").is_file()  # the work was done; only the printing stopped


def test_ser_agent_chat_into_a_closed_pipe(tmp_path):
    from agents.testing import make_tiny_chat_lm

    lm = make_tiny_chat_lm(tmp_path / "lm")
    proc = run_with_closed_stdout("agents.cli", "chat", "--mode", "none", "--transcript", "hello", "--model", f"local:{lm}")
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_ser_analyze_into_a_closed_pipe(tiny_hf):
    proc = run_with_closed_stdout("ser_tool.cli", "analyze", str(SAMPLE), str(SAMPLE), "--backend", "hf", "--model", tiny_hf,
                                  "--offline", "--jsonl")
    assert proc.returncode == 141
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


# -- a missing optional extra: named with its install command before any work, never a traceback ----------------

def run_without(modules: tuple[str, ...], module: str, argv: list[str], tmp_path) -> subprocess.CompletedProcess:
    """Run `module`'s main(argv) in a fresh interpreter where `modules` cannot be imported (as if the extra
    that brings them were not installed)."""
    code = ("import sys\n"
            f"for name in {modules!r}:\n    sys.modules[name] = None\n"
            f"from {module} import main\n"
            f"sys.exit(main({argv!r}))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


MISSING_EXTRAS = [
    (("mcp",), "mcp_server.cli", [], '"mcp"', 'pip install -e ".[mcp]"'),
    (("langchain_core",), "agents.cli", ["ask", "--audio", "x.wav", "--model", "local", "q"], '"agent"', 'pip install -e ".[agent]"'),
    (("langchain_core", "langchain"), "agents.cli", ["chat"], '"agent"', 'pip install -e ".[agent]"'),
    (("librosa",), "evals.cli", ["ser", "DATA"], '"eval"', 'pip install -e ".[eval]"'),
    (("matplotlib",), "evals.cli", ["ser", "DATA", "--no-baseline"], '"eval"', 'pip install -e ".[eval]"'),
    (("langchain_core",), "evals.cli", ["cpbench", "run", "qa.jsonl", "--mc"], '"agent"', 'pip install -e ".[agent]"'),
]


@pytest.mark.parametrize("missing,module,argv,extra,hint", MISSING_EXTRAS, ids=[f"{c[1]} {' '.join(c[2][:2])} without {c[0][0]}" for c in MISSING_EXTRAS])
def test_a_missing_extra_is_named_with_its_install_command(tmp_path, missing, module, argv, extra, hint):
    if "DATA" in argv:  # a real corpus: without the check the run would start working on it
        argv = [str(make_toy_corpus(tmp_path / "toy", n_speakers=4)) if a == "DATA" else a for a in argv]
        argv += ["--out", str(tmp_path / "out")]
    proc = run_without(missing, module, argv, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "No module named" not in proc.stderr
    assert extra in proc.stderr and hint in proc.stderr and missing[0] in proc.stderr
    assert proc.stdout == "" and not (tmp_path / "out").exists()  # nothing was done


@pytest.mark.parametrize("module", ["agents.cli", "mcp_server.cli", "evals.cli"])
def test_help_works_without_the_extras(tmp_path, module):
    proc = run_without(("mcp", "langchain_core", "langchain", "librosa", "sklearn", "matplotlib"), module, ["--help"], tmp_path)
    assert proc.returncode == 0 and "usage:" in proc.stdout, proc.stderr


def test_an_installed_extra_passes_the_check():
    from ser_tool.console import missing_modules, require_extra

    assert missing_modules(["json", "no_such_module_xyz"]) == ["no_such_module_xyz"]
    require_extra("mcp", ["json"], command="x")  # returns: nothing is missing
    with pytest.raises(SystemExit) as exit_:
        require_extra("eval", ["no_such_module_xyz"], command="x")
    assert exit_.value.code == 2
