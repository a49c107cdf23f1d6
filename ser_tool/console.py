"""What every command line (`ser`, `ser-eval`, `ser-agent`) shares besides settings: number flags that
refuse out-of-range values with a clear message, and a quiet exit when stdout is closed early.

Flags that map to a `Settings` field are checked by Settings itself (the same bounds then hold for the
SER_* variable); the `number` types here are for every other numeric flag.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
from collections.abc import Callable
from typing import TypeVar

__all__ = ["EXIT_CLOSED_STDOUT", "number", "quiet_on_closed_stdout"]

# 128 + SIGPIPE: what a shell reports for any program stopped by a closed pipe (`yes | head -1`).
EXIT_CLOSED_STDOUT = 141

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
