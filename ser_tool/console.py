"""What every command line (`ser`, `ser-eval`, `ser-agent`) shares besides settings: number flags that
refuse out-of-range values with a clear message, a quiet exit when stdout is closed early, and how an
error becomes a line on stderr (its hints as this command's flags) and an exit code.

Flags that map to a `Settings` field are checked by Settings itself (the same bounds then hold for the
SER_* variable); the `number` types here are for every other numeric flag.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
from collections.abc import Callable, Mapping
from typing import TypeVar

from ser_tool.describe import MESSAGE_MAX_CHARS, safe_name
from ser_tool.errors import BackendError, ConfigError, ModelNotAvailableError, SERError

__all__ = ["EXIT_CLOSED_STDOUT", "EXIT_CODES", "error_message", "error_text", "exit_code", "number", "quiet_on_closed_stdout"]

# 128 + SIGPIPE: what a shell reports for any program stopped by a closed pipe (`yes | head -1`).
EXIT_CLOSED_STDOUT = 141

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
