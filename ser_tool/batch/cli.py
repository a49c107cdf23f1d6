"""`ser batch` and `ser batch-report`: their flags, progress bar and exit codes (ser_tool.cli registers them).

Exit codes as for `ser analyze`: 0 every recording analysed; 1 at least one of this job's recordings
has an error row (the others are written); 2 bad usage; 3 the model could not be loaded; 130 interrupted
(finished rows are kept: rerun the same command to continue).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import Any

from ser_tool.console import number
from ser_tool.settings import add_model_flags

__all__ = ["add_parsers", "run_batch_command", "run_report_command"]

EXIT_OK, EXIT_FILE_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def add_parsers(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser(
        "batch", help="analyse an archive of recordings into Parquet (resumable; local processes or Ray)",
        description="Analyse many recordings into one row each (Parquet part files, or JSONL) plus summary.json. "
                    "Rerunning the same command skips the recordings already in --out (same path, size and "
                    "modification time), so a stopped or killed job continues where it stopped.",
        epilog="INPUT: audio files, folders (searched recursively), globs ('calls/**/*.wav', quoted), a manifest "
               "CSV with a 'path' column (its other columns are copied into the rows), or a .txt/.lst file with "
               "one path per line. Paths in a manifest or list are relative to that file's folder.")
    b.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders, globs, manifest CSVs or path lists")
    b.add_argument("--out", required=True, metavar="DIR", help="output folder (created; rerun into it to resume)")
    b.add_argument("--pattern", metavar="GLOB", help="file names to pick up in folders and globs, e.g. '*.wav' "
                                                     "(default: common audio extensions)")
    b.add_argument("--format", dest="fmt", choices=("parquet", "jsonl"), default="parquet", help="part file format (default parquet)")
    b.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: worker processes on this machine (default); ray: Ray Data, local or on a cluster")
    b.add_argument("--workers", type=number(int, ge=1, le=4096),
                   help="worker processes or Ray actors, one model each (default: this machine's cores; with "
                        "--address, the cluster's CPUs)")
    b.add_argument("--address", help="with --engine ray: an existing Ray cluster, e.g. auto, ray://HEAD:10001 "
                                     "(default: start Ray on this machine)")
    b.add_argument("--part-size", type=number(int, ge=1, le=1_000_000), default=500,
                   help="rows per part file (default 500); a killed job loses at most the part it had not written")
    b.add_argument("--part-seconds", type=number(float, gt=0), default=60.0,
                   help="also write a part after this many seconds (default 60)")
    add_model_flags(b, speakers=True)

    r = sub.add_parser("batch-report", help="tables and pictures of a `ser batch` output folder",
                       description="Summarise a `ser batch` output folder: the expressed emotions per folder or per "
                                   "manifest column, a valence/arousal scatter and an emotion histogram (PNG), the "
                                   "slowest and the failed files. Writes report.md, CSVs and PNGs; prints the report.")
    r.add_argument("dir", metavar="DIR", help="the --out folder of `ser batch`")
    r.add_argument("--by", metavar="COLUMN", help="group by this column (e.g. a manifest column such as speaker or "
                                                   "label; default: the recording's folder)")
    r.add_argument("--out", metavar="DIR", help="where to write the report (default DIR/report)")
    r.add_argument("--top", type=number(int, ge=0, le=10_000), default=10, help="how many of the slowest files to list (default 10)")
    r.add_argument("--no-plots", action="store_true", help="tables only (no matplotlib needed)")


class _Bar:
    """tqdm bar: files/s and ETA from tqdm, audio-hours per second and failures in the postfix."""

    def __init__(self) -> None:
        self.bar = None
        self.audio = 0.0
        self.failed = 0
        self.t0 = time.perf_counter()

    def start(self, todo: int, skipped: int) -> None:
        from tqdm import tqdm

        if skipped:
            print(f"ser batch: {skipped} recording(s) already in the output folder are skipped", file=sys.stderr)
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=todo, desc="ser batch", unit="file", file=sys.stderr, disable=None, smoothing=0.05,
                        dynamic_ncols=True)

    def row(self, row: dict[str, Any]) -> None:
        self.audio += row.get("duration") or 0.0
        self.failed += bool(row.get("error_type"))
        if self.bar is not None:
            wall = max(1e-9, time.perf_counter() - self.t0)
            self.bar.set_postfix_str(f"{self.audio / 3600 / wall:.4f} audio-h/s, {self.failed} failed", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_batch_command(args: argparse.Namespace) -> int:
    """`ser batch`; ConfigError propagates to ser_tool.cli (exit 2)."""
    import os

    from ser_tool.batch.job import run_batch
    from ser_tool.errors import SERError
    from ser_tool.settings import Settings

    cfg = Settings.from_args(args)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from ser_tool.batch.job import StopRequest

    stop = StopRequest()  # Ctrl-C and `kill` stop the job after the row in hand; finished rows are written
    previous = {sig: signal.signal(sig, stop.handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = run_batch(args.inputs, args.out, spec=cfg.backend_spec(), options=cfg.analysis_options(),
                           pattern=args.pattern, fmt=args.fmt, engine=args.engine, workers=args.workers,
                           address=args.address, part_rows=args.part_size, part_seconds=args.part_seconds,
                           progress=_Bar(), stop=stop)
    except SERError as e:
        from ser_tool.console import error_text, exit_code

        code = exit_code(e)
        if code == 2:
            raise
        print(f"ser: error: {error_text(e, args)}", file=sys.stderr)
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    last = result.summary["last_run"]
    print(f"ser batch: {result.processed} recording(s) processed ({result.failed} failed), {result.skipped} already done; "
          f"{last['wall_seconds']:.1f} s, {last['files_per_second'] or 0:.2f} files/s, "
          f"{last['x_real_time'] or 0:.1f}x real time", file=sys.stderr)
    print(f"ser batch: {args.out} holds {result.summary['rows']} row(s) in {result.summary['parts']} part(s); "
          f"summary in {args.out}/summary.json; `ser batch-report {args.out}` for tables and pictures", file=sys.stderr)
    if result.interrupted:
        print("ser batch: interrupted; rerun the same command to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    if result.failed_inputs:
        print(f"ser batch: {result.failed_inputs} of {result.total} recording(s) could not be analysed "
              "(rows with an error; `ser batch-report` lists them)", file=sys.stderr)
        return EXIT_FILE_FAILED
    return EXIT_OK


def run_report_command(args: argparse.Namespace) -> int:
    from ser_tool.batch.batch_report import render_markdown, write_report

    ov, out = write_report(args.dir, args.out, by=args.by, top=args.top, plots=not args.no_plots)
    print(render_markdown(ov, ov.pictures))
    print(f"(written to {out}/: report.md, distribution.csv, failed.csv{', PNGs' if ov.pictures else ''})", file=sys.stderr)
    return EXIT_OK
