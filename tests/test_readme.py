"""The README's set-up commands are the ones CI runs, and its examples use real flags."""

import re
from pathlib import Path

from ser_tool.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


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


def test_readme_flags_exist():
    parser = build_parser()
    analyze = parser._subparsers._group_actions[0].choices["analyze"]
    known = {opt for action in analyze._actions for opt in action.option_strings}
    cli_part = (REPO / "README.md").read_text().split("## Benchmark")[0]  # later flags are the benchmark's
    used = set(re.findall(r"`(--[a-z-]+)", cli_part))
    assert len(used) > 10
    assert used - known == set()
