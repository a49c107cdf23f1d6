"""The README's set-up commands are the ones CI runs, and its examples use real flags."""

import re

from ser_tool.cli import build_parser
from tests.helpers import REPO


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def test_ci_runs_the_readme_test_command():
    test_command = _bash_blocks()[1].strip()
    assert "pytest" in test_command
    assert test_command in (REPO / ".ci" / "run").read_text()


def test_quick_start_analyses_a_bundled_sample():
    main_command = _bash_blocks()[0].strip()
    sample = main_command.rsplit("ser analyze ", 1)[1].split()[0]
    assert (REPO / sample).is_file()


def _flags(parser) -> set[str]:
    flags = {opt for action in parser._actions for opt in action.option_strings}
    for action in parser._actions:
        choices = getattr(action, "choices", None)
        if isinstance(choices, dict):  # subcommands
            for sub in choices.values():
                flags |= _flags(sub)
    return flags


def test_readme_flags_exist():
    from agents.cli import build_parser as agent_parser
    from evals.cli import build_parser as eval_parser
    from mcp_server.cli import build_parser as mcp_parser

    known = _flags(build_parser()) | _flags(eval_parser()) | _flags(mcp_parser()) | _flags(agent_parser())
    cli_part = (REPO / "README.md").read_text().split("## Benchmark")[0]  # later flags are the benchmark's
    others = ("pip ", "ray start", "ray get-auth-token", "benchmarks/")  # pip's, the ray CLI's, a benchmark script's flags
    ours = "\n".join(line for line in cli_part.splitlines() if not any(o in line for o in others))
    used = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", ours))
    assert len(used) > 10
    assert used - known == set()
