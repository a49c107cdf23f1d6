"""What every command line (`ser`, `ser-eval`, `ser-agent`, `ser-mcp`) shares besides settings: number flags
that refuse out-of-range values with a clear message, a quiet exit when stdout is closed early, how an error
becomes a line on stderr (its hints as this command's flags) and an exit code, a check that an entry point's
optional extra is installed, and progress that also reports when stderr is not a terminal.

Flags that map to a `Settings` field are checked by Settings itself (the same bounds then hold for the
SER_* variable); the `number` types here are for every other numeric flag.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO, TypeVar

from ser_tool.describe import MESSAGE_MAX_CHARS, safe_name
from ser_tool.errors import BackendError, ConfigError, ModelNotAvailableError, SERError

__all__ = [
    "EXIT_CLOSED_STDOUT", "EXIT_CODES", "EXIT_MISSING_EXTRA", "LineProgress", "error_message", "error_text", "exit_code",
    "install_command", "missing_modules", "number", "progress_bar", "quiet_on_closed_stdout", "require_extra",
]

# 128 + SIGPIPE: what a shell reports for any program stopped by a closed pipe (`yes | head -1`).
EXIT_CLOSED_STDOUT = 141
# A missing optional extra is an installation problem the user fixes before running again, like bad usage.
EXIT_MISSING_EXTRA = 2

# Exit code of a command stopped by an error: 2 bad usage or settings, 3 the model could not be loaded
# or failed, 1 anything else (e.g. the audio). The first class on the error's MRO that is listed wins.
EXIT_CODES: Mapping[type[BaseException], int] = {ConfigError: 2, ModelNotAvailableError: 3, BackendError: 3}


def exit_code(e: BaseException, codes: Mapping[type[BaseException], int] = EXIT_CODES) -> int:
    """The exit code for a command stopped by `e` (`codes`: a command's own table, e.g. with its errors added)."""
    return next((codes[cls] for cls in type(e).__mro__ if cls in codes), 1)


def error_text(e: BaseException, args: argparse.Namespace | None = None) -> str:
    """An error's message with its hints as this command's flags and SER_* variables (raw: for JSON)."""
    if not isinstance(e, SERError):
        return str(e)
    from ser_tool.settings import flag_words  # pydantic-settings: only when an error is printed

    return e.worded(flag_words(args))


def error_message(e: BaseException, args: argparse.Namespace | None = None, max_chars: int | None = MESSAGE_MAX_CHARS) -> str:
    """`error_text` for a terminal line: it may quote a file name, so control characters are escaped."""
    return safe_name(error_text(e, args), max_chars)

N = TypeVar("N", int, float)


def number(kind: type[N], *, ge: N | None = None, gt: N | None = None, le: N | None = None) -> Callable[[str], N]:
    """An argparse `type` that parses an int or float and checks its bounds, e.g. number(int, ge=1)."""
    if ge is not None and gt is not None:
        raise ValueError("give ge or gt, not both")
    what = "a whole number" if kind is int else "a number"
    if ge is not None and le is not None:
        wanted = f"{what} from {ge} to {le}"
    elif gt is not None:
        wanted = f"{what} above {gt}" + (f" and at most {le}" if le is not None else "")
    elif ge is not None:
        wanted = f"{what} of at least {ge}"
    else:
        wanted = what + (f" of at most {le}" if le is not None else "")

    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        out_of_range = ((ge is not None and value < ge) or (gt is not None and value <= gt)
                        or (le is not None and value > le))
        if not math.isfinite(value) or out_of_range:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


F = TypeVar("F", bound=Callable[..., int])


def quiet_on_closed_stdout(main: F) -> F:
    """Wrap a CLI `main` so that a reader closing stdout early (`ser analyze ... | head -1`) ends the
    program quietly with exit code 141, instead of a BrokenPipeError traceback.

    The standard recipe (Python docs, "Note on SIGPIPE"): stdout is flushed before returning, so the
    error surfaces here and not at interpreter exit, and on a closed pipe the devnull device is put in
    place of stdout, so the interpreter's own final flush has somewhere to go."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            try:
                return main(*args, **kwargs)
            finally:  # also after argparse's SystemExit (--help, --version): its text may still be buffered
                sys.stdout.flush()
        except BrokenPipeError:
            try:
                fd = sys.stdout.fileno()
            except (AttributeError, OSError, ValueError):  # not a real file (a test's capture)
                return EXIT_CLOSED_STDOUT
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
            return EXIT_CLOSED_STDOUT

    return wrapper  # type: ignore[return-value]


def install_command(extra: str) -> str:
    """How to install an optional extra. ser-tool is installed from its source folder (it is not on PyPI)."""
    return f'pip install -e ".[{extra}]"'


def missing_modules(modules: Sequence[str]) -> list[str]:
    """The top-level modules of `modules` that cannot be imported here (found without importing them)."""
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken or half-imported package: as good as missing
            found = False
        if not found:
            missing.append(name)
    return missing


def require_extra(extra: str, modules: Sequence[str], *, command: str, what: str | None = None) -> None:
    """Before an entry point does any work: exit with code 2 and the install command when a module of its
    optional `extra` is missing, instead of a traceback halfway through (`No module named 'mcp'`).

    e.g. require_extra("mcp", ["mcp", "httpx", "uvicorn", "anyio"], command="ser-mcp")."""
    missing = missing_modules(modules)
    if not missing:
        return
    print(f"{command}: error: {what or command} needs the optional \"{extra}\" dependencies, which are not installed "
          f"(missing: {', '.join(missing)}). Install them from the ser-tool source folder: {install_command(extra)}",
          file=sys.stderr)
    raise SystemExit(EXIT_MISSING_EXTRA)


class LineProgress:
    """A progress bar for logs: when stderr is not a terminal (a CI job, `2> log`, nohup), tqdm stays silent,
    so a long run would print nothing for minutes. This writes one line at the start, then every
    `every_percent` percent or `every_seconds` seconds, whichever comes first, and one at the end.

    The part of tqdm's interface the entry points use: update(n), total, n, close()."""

    def __init__(self, total: int | None, desc: str, *, unit: str = "it", file: TextIO | None = None,
                 every_percent: float = 10.0, every_seconds: float = 30.0, prefix: str = "") -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self._file = file
        self._every_percent, self._every_seconds, self._prefix = every_percent, every_seconds, prefix
        self._start = self._last_time = time.monotonic()
        self._last_percent = 0.0
        self._closed = False
        self._line("started")

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        percent = 100.0 * self.n / self.total if self.total else 0.0
        if self.total and self.n >= self.total:
            return  # close() writes the last line
        if (self.total and percent - self._last_percent >= self._every_percent) or now - self._last_time >= self._every_seconds:
            self._last_percent, self._last_time = percent, now
            self._line()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._line("done")

    def _line(self, note: str = "") -> None:
        elapsed = time.monotonic() - self._start
        text = f"{self._prefix}{self.desc}: {self.n}/{self.total} {self.unit}" if self.total else \
            f"{self._prefix}{self.desc}: {self.n} {self.unit}"
        if self.total:
            text += f" ({100.0 * self.n / self.total:.0f}%)"
        if note == "started":
            text += " started"
        else:
            text += f" after {_duration(elapsed)}"
            if note == "done":
                text += ", done"
            elif self.n and self.total and self.n < self.total:
                text += f", about {_duration(elapsed / self.n * (self.total - self.n))} left"
        print(text, file=self._file or sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def progress_bar(total: int | None, desc: str, *, unit: str = "it", file: TextIO | None = None, prefix: str = "",
                 **tqdm_kwargs: Any):
    """A tqdm bar on a terminal, LineProgress lines otherwise (see LineProgress); both on stderr by default."""
    file = file or sys.stderr
    try:
        terminal = file.isatty()
    except (AttributeError, ValueError):
        terminal = False
    if terminal:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=file, **tqdm_kwargs)
    return LineProgress(total, desc, unit=unit, file=file, prefix=prefix)
