"""`ser-eval`: evaluations. `ser-eval ser DATA_DIR...` runs the SER benchmark; `ser-eval levels
DATA_DIR...` scores arousal against expressed-emotion levels; `ser-eval cpbench generate|run`
the CP-Bench style question answering evaluation of the reference agent.

The emotion model is chosen with the flags (and SER_* variables) every entry point shares; in
`cpbench run`, where --model is the answering chat model, the emotion model's flag is --ser-model.
Exit codes: 0 ok; 2 bad usage or settings; 3 a model could not be loaded or failed; 4 `cpbench run` wrote its
report but the answers look degenerate (see the summary's warning; --allow-degenerate accepts them);
141 stdout closed early.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ser_tool.console import error_text, exit_code, number, progress_bar, quiet_on_closed_stdout, require_extra
from ser_tool.settings import add_model_flags


DEGENERATE_EXIT = 4  # `cpbench run`: the report was written, but the answers look degenerate

# what each step imports from the optional extras (checked before any work, so a missing one is named
# with its install command at once, not as a traceback after minutes of work)
EVAL_MODULES = ("matplotlib",)  # the charts
BASELINE_MODULES = ("librosa", "sklearn")  # the classical baseline of `ser-eval ser`
AGENT_MODULES = ("langchain_core", "langchain")  # the reference agent of `cpbench run`


def default_feature_cache() -> Path:
    """The user's cache folder for baseline features ($XDG_CACHE_HOME/ser-tool, else ~/.cache/ser-tool)."""
    from ser_tool.parts import cache_root

    return cache_root() / "baseline-features"


def default_jobs() -> int:
    import os

    return max(1, min(8, os.cpu_count() or 1))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ser-eval", description="Evaluate ser-tool models and agents.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    s = sub.add_parser("ser", help="SER metrics (UAR, WA, macro-F1, CCC) on corpora in the manifest format",
                       description="Score a backend on the held-out speakers of corpora in the manifest format, with a classical baseline on the same split.")
    s.add_argument("data", nargs="+", metavar="DATA_DIR", help="corpus folders, each with manifest.csv")
    s.add_argument("--split", default="test", choices=("test", "dev", "train", "all"), help="which speakers to score (default: held-out test speakers)")
    s.add_argument("--out", default="runs/ser-eval", help="folder for report.json, confusion.png, summary.txt (with --loco: also "
                   "outputs/, each head system's logits per clip and fold, for studying other decision rules)")
    s.add_argument("--no-baseline", action="store_true", help="skip the classical baseline")
    s.add_argument("--baseline-train", nargs="+", metavar="DIR",
                   help="corpora whose train split fits the baseline (default: DATA_DIR); for a cross-corpus test name the model's training corpora")
    s.add_argument("--limit", type=number(int, ge=1), help="score at most N clips (a smoke run)")
    s.add_argument("--feature-cache", metavar="DIR",
                   help="where the baseline keeps each clip's features between runs, keyed by the file's content "
                        f"and the feature settings (default: {default_feature_cache()})")
    s.add_argument("--no-feature-cache", action="store_true", help="compute the baseline's features afresh, keep nothing")
    s.add_argument("--jobs", type=number(int, ge=1, le=256), default=default_jobs(),
                   help=f"worker processes for the baseline's features (default: the CPU count, at most 8; here {default_jobs()})")
    s.add_argument("--loco", action="store_true",
                   help="leave-one-corpus-out: for each corpus (group), fit every system on the others and score all its clips "
                        "(instead of scoring the chosen backend)")
    s.add_argument("--systems", nargs="+", metavar="SYSTEM",
                   help="with --loco: mfcc-lr, lr:REP, lr:REP-utt, lr:REP+REP, head:REP[+REP]; REP: resemblyzer, whisper-base, whisper-base-mid, whisper-tiny-en-mid, prosody, hf-whisper:FOLDER_OR_HUB_ID "
                        "(default: evals.classify.loco.DEFAULT_SYSTEMS)")
    s.add_argument("--loco-cache", metavar="DIR",
                   help="with --loco: frozen-feature cache folder (default $XDG_CACHE_HOME/ser-tool/features, as `ser train`)")
    s.add_argument("--folds", nargs="+", metavar="FOLD", help="with --loco: run only these folds (e.g. emodb_trimmed2s within)")
    s.add_argument("--epochs", type=number(int, ge=1), help="with --loco: epochs of each head (default: ser_tool.train.voice.VoiceTrainConfig)")
    s.add_argument("--heads", type=number(int, ge=1, le=16), default=1,
                   help="with --loco: each head:* system averages N heads trained with seeds 0..N-1, or from --head-seed (as `ser train --heads`; default 1)")
    s.add_argument("--head-level-db", type=number(float, ge=-60, le=0), metavar="DB",
                   help="with --loco: head:* systems hear every clip at this active speech level (as `ser train --backbone` "
                        "trains the shipped voice model: -26); default: as --level-db")
    s.add_argument("--level-db", type=number(float, ge=-60, le=0), metavar="DB",
                   help="with --loco: every feature system (mfcc-lr, lr:*, head:*) hears every clip at this active speech level, "
                        "so the anchors hear what the heads hear; default: the corpora's own levels")
    s.add_argument("--arousal-corpus", action="append", default=[], metavar="DIR",
                   help="with --loco: a corpus with expressed-emotion levels and no categories (e.g. BAVED) that every "
                        "head also trains its arousal on, in every fold (as `ser train --arousal-corpus`); never scored")
    s.add_argument("--degraded-variants", type=number(int, ge=0, le=8), default=0, metavar="N",
                   help="with --loco: heads also train on N degraded copies of each fitting clip (as `ser train --degraded-variants`)")
    s.add_argument("--average-from", type=number(int, ge=0), default=0, metavar="EPOCH",
                   help="with --loco: each head keeps its weights averaged over every step from this epoch on instead of "
                        "its best dev epoch (as `ser train --average-from`; default 0: the best epoch)")
    s.add_argument("--head-seed", type=number(int, ge=0), metavar="SEED",
                   help="with --loco: the heads' first seed; --heads N trains seeds SEED..SEED+N-1 (default 0, as `ser train --seed`)")
    s.add_argument("--head-corpus-cap", type=number(int, ge=1), metavar="N",
                   help="with --loco: training clips a corpus contributes to each head per epoch (default: "
                        "ser_tool.train.voice.VoiceTrainConfig, 600; `ser train --backbone` uses its --corpus-cap, 1000)")
    s.add_argument("--compact-epochs", type=number(int, ge=1), metavar="N",
                   help="with --loco and the system `compact` (the shipped model's architecture, trained from scratch in each fold; "
                        "its models are kept in OUT/compact/FOLD): epochs (default: ser_tool.train.loop.TrainConfig, as `ser train`)")
    s.add_argument("--compact-corpus-cap", type=number(int, ge=1), metavar="N",
                   help="with --loco and `compact`: training clips a corpus contributes per epoch (default: as `ser train`)")
    # whole clips, not windows (--batch-size counts clips): no segmentation or limit flags
    add_model_flags(s, analysis=False, defaults={"batch_size": 16})
    v = sub.add_parser("levels", help="arousal against expressed-emotion levels (low/normal/high) on corpora without categories",
                       description="Score the backend's arousal against the intensity levels in the manifests (BAVED: low, "
                                   "normal, high; RAVDESS: normal, strong), with the recording's loudness as the anchor to beat.")
    v.add_argument("data", nargs="+", metavar="DATA_DIR", help="corpus folders, each with manifest.csv and an intensity column")
    v.add_argument("--split", default="all", choices=("all", "test", "dev", "train"),
                   help="which speakers to score (default all: for corpora the model never saw; test: its held-out speakers)")
    v.add_argument("--out", default="runs/levels", help="folder for report.json and summary.txt")
    v.add_argument("--limit", type=number(int, ge=1), help="score at most N clips (a smoke run)")
    add_model_flags(v, analysis=False, defaults={"batch_size": 16})
    r = sub.add_parser("loco-rules", help="other decision rules and calibrations of a --loco run's head systems, from its saved outputs",
                       description="From the per-clip outputs a `ser-eval ser --loco` run kept (OUT/outputs/): per strength of the "
                                   "heads' prior shift, UAR, classes under 5 %, ECE and NLL per scored corpus; whether one extra "
                                   "temperature fitted on the other left-out corpora carries over (nested); and how often the "
                                   "reports' confidence words (low / moderate / high) were right. Trains nothing.")
    r.add_argument("run", metavar="LOCO_DIR", help="the --out folder of a `ser-eval ser --loco` run")
    r.add_argument("--system", help="the head system to study when the run has several (e.g. head:whisper-tiny-en-mid)")
    r.add_argument("--alphas", nargs="+", type=number(float, ge=0), default=[0.0, 0.5, 1.0], metavar="A",
                   help="strengths of the prior shift to compare (default 0 0.5 1; 1 = the voice backend's)")
    r.add_argument("--out", help="also write the table to this file")
    add_cpbench(sub)
    return parser


def add_cpbench(sub) -> None:
    c = sub.add_parser("cpbench", help="CP-Bench style QA: the reference agent per affect mode, LLM judge or multiple choice",
                       description="Generate a CP-style QA set from corpora, or run the reference agent on a QA set and score it.")
    csub = c.add_subparsers(dest="cp_command", metavar="STEP")
    g = csub.add_parser("generate", help="write a CP-style QA set (dev.jsonl, test.jsonl) from corpora in the manifest format",
                        description="Write the CP-style set v2 from held-out speakers, split by speaker into dev (tune on it) "
                                    "and test (report on it): OUT/dev.jsonl, OUT/test.jsonl, OUT/audio/ (stitched recordings), OUT/set.json.")
    g.add_argument("data", nargs="*", default=["../shared/data/ravdess"], metavar="DATA_DIR",
                   help="corpus folders with manifest.csv and a text column (default: ../shared/data/ravdess)")
    g.add_argument("--out", required=True, help="folder for the set (never inside the repository: stitched audio is written there)")
    g.add_argument("--n-clips", type=number(int, ge=1), default=28,
                   help="test clips with content, direct and contextual questions (default 28)")
    g.add_argument("--n-situational", type=number(int, ge=0), help="other test clips with a situational question (default: --n-clips)")
    g.add_argument("--n-stitched", type=number(int, ge=0), default=16,
                   help="test stitched recordings, 2 temporal questions each (default 16)")
    g.add_argument("--dev-ratio", type=number(float, ge=0, le=4), default=0.5, help="dev counts = this x the test counts (default 0.5)")
    g.add_argument("--seed", type=number(int, ge=0), help="generator seed (default: the fixed one in evals.cpbench.generate)")
    g.add_argument("--choices", type=number(int, ge=2, le=4), default=4, help="options per multiple-choice question, 2..4 (default 4)")
    r = csub.add_parser("run", help="answer a QA set in each affect mode and score it")
    r.add_argument("data", metavar="DATA", help="a .jsonl / .csv file, a datasets save_to_disk folder (hub layout), or a hub id")
    r.add_argument("--model", dest="chat_model", default="local",
                   help="answering chat model: local | local:smollm2 | local:PATH | provider:model (default local)")
    r.add_argument("--judge", help="judge chat model for open-ended scoring (local | provider:model)")
    r.add_argument("--mc", action="store_true",
                   help="score the multiple-choice form by exact choice; with --judge the open-ended form is judged too, "
                        "and the judge's agreement with the letter reported")
    r.add_argument("--modes", nargs="+", default=["none", "predicted", "oracle"], choices=("none", "predicted", "oracle"))
    r.add_argument("--temperature", type=number(float, ge=0), default=0.0, help="answering model temperature (default 0)")
    r.add_argument("--judge-temperature", type=number(float, ge=0), default=0.0)
    r.add_argument("--no-words", action="store_true",
                   help="withhold the dataset's transcript (the words are unknown; every mode answers without them)")
    r.add_argument("--allow-degenerate", action="store_true",
                   help="exit 0 even when the answers look degenerate (parse rate < 90%%, or one letter > 60%% of answers)")
    r.add_argument("--concurrency", type=number(int, ge=1, le=256), default=1,
                   help="samples in flight at once (default 1; raise it for API models)")
    r.add_argument("--limit", type=number(int, ge=1), help="at most N samples (a smoke run)")
    r.add_argument("--cache", help="call cache folder (default OUT/cache); a rerun answers repeated calls from it")
    r.add_argument("--no-cache", action="store_true")
    r.add_argument("--out", default="runs/cpbench", help="folder for report.json, scores.png, summary.txt")
    # the emotion model of mode predicted (--asr-model: the words from speech recognition instead of the
    # dataset's transcript); short single-utterance clips: analyse everything above the noise floor
    # by default, as WebRTC's VAD drops some
    add_model_flags(r, model_flag="--ser-model", asr=True, defaults={"vad": "energy"},
                    asr_default="none - the dataset's own transcripts are used")


def cpbench_main(args, parser) -> int:
    from ser_tool import Analyzer, Settings, load_asr
    from ser_tool.errors import SERError

    from evals.cpbench.dataset import load_samples

    if args.cp_command == "generate":
        from evals.cpbench.generate import DEFAULT_SEED, generate

        try:
            made = generate(args.data, n_clips=args.n_clips, n_situational=args.n_situational, n_stitched=args.n_stitched,
                            dev_ratio=args.dev_ratio, seed=DEFAULT_SEED if args.seed is None else args.seed,
                            n_choices=args.choices)
            paths = made.write(args.out)
        except (SERError, ValueError, OSError) as e:
            print(f"ser-eval: error: {error_text(e, args)}", file=sys.stderr)
            return 2
        for split, counts in made.counts().items():
            per_type = ", ".join(f"{t} {n}" for t, n in counts.items())
            print(f"{split}: {sum(counts.values())} questions ({per_type}); speakers {', '.join(made.speakers[split]) or '-'}"
                  f" -> {paths[split]}")
        print(f"settings and counts: {paths['meta']}")
        return 0
    if args.cp_command != "run":
        parser.parse_args(["cpbench", "--help"])
        return 2
    if not args.mc and not args.judge:
        print("ser-eval: error: give --judge MODEL for open-ended scoring, or --mc for multiple-choice scoring", file=sys.stderr)
        return 2
    if args.no_words and args.asr_model:
        print("ser-eval: error: --no-words and --asr-model contradict each other (unknown words vs recognised words); give one",
              file=sys.stderr)
        return 2
    require_extra("agent", AGENT_MODULES, command="ser-eval", what="ser-eval cpbench run (the reference agent)")
    require_extra("eval", EVAL_MODULES, command="ser-eval", what="ser-eval cpbench run (the scores chart)")
    from tqdm import tqdm

    from agents import AgentError
    from agents.cli import EXIT_CODES as AGENT_EXIT_CODES  # a failing chat model ends a run as it ends ser-agent

    from agents.choice import choose_letter

    from evals.cpbench.report import summary, write_report
    from evals.cpbench.runner import evaluate
    from evals.output import OutputError, ensure_writable

    out = ensure_writable(args.out, "the report")  # now, not after a long run
    cache_dir = None if args.no_cache else Path(args.cache or out / "cache")
    try:
        cfg = Settings.from_args(args)
        analyzer = Analyzer(cfg.backend_spec(), cfg.analysis_options())  # loads on first use: only mode predicted does
    except SERError as e:
        print(f"ser-eval: error: {error_text(e, args)}", file=sys.stderr)
        return exit_code(e)
    try:
        samples = load_samples(args.data)
        asr = (load_asr(cfg.asr_model, device=cfg.device, language=cfg.language, offline=cfg.offline)
               if cfg.asr_model and not args.no_words else None)  # --no-words: SER_ASR_MODEL is not used either
        report = evaluate(
            samples, args.chat_model, modes=args.modes, mc=args.mc, judge=args.judge, temperature=args.temperature,
            judge_temperature=args.judge_temperature, analyzer=analyzer, asr=asr,
            transcript="none" if args.no_words else "asr" if asr else "given",
            cache_dir=cache_dir, concurrency=args.concurrency,
            limit=args.limit, data=str(args.data), choose=choose_letter if args.mc else None,
            progress_factory=lambda total: tqdm(total=total, desc="answers", unit="q", file=sys.stderr, disable=None),
        )
    except (SERError, AgentError, ValueError) as e:
        print(f"ser-eval: error: {error_text(e, args)}", file=sys.stderr)
        if not args.no_cache:
            print("ser-eval: finished calls are cached; rerun the same command to resume", file=sys.stderr)
        return exit_code(e, AGENT_EXIT_CODES) if isinstance(e, SERError) else 2
    except KeyboardInterrupt:
        print(f"ser-eval: interrupted; {_saved(cache_dir)}", file=sys.stderr)
        return 130
    try:
        paths = write_report(report, out)
    except OutputError as e:
        print(f"ser-eval: error: {error_text(e, args)}", file=sys.stderr)
        if cache_dir is not None:
            print(f"ser-eval: every answer is cached in {cache_dir}; rerun with --cache {cache_dir} (and another --out) "
                  "to write the report without repeating the calls", file=sys.stderr)
        return exit_code(e)
    print(summary(report))
    print(f"\nwrote {paths['log']}, {paths['chart']}, {paths['summary']}")
    if report.warnings and not args.allow_degenerate:
        print(f"ser-eval: error: the answers look degenerate ({len(report.warnings)} warning(s) above); fix the model or "
              "its prompt, or pass --allow-degenerate to accept them", file=sys.stderr)
        return DEGENERATE_EXIT
    return 0


def loco_main(args) -> int:
    import dataclasses

    from ser_tool.errors import SERError
    from ser_tool.train.loop import TrainConfig
    from ser_tool.train.voice import VoiceTrainConfig

    from evals.classify.loco import DEFAULT_SYSTEMS, run_loco, summary
    from evals.output import ensure_writable, write_atomic

    ensure_writable(args.out, "the report")  # now, not after hours of folds
    try:
        cfg = VoiceTrainConfig(heads=args.heads, degraded_variants=args.degraded_variants, average_from=args.average_from,
                               **({"epochs": args.epochs} if args.epochs else {}))
    except SERError as e:  # --average-from past the last epoch
        print(f"ser-eval: error: {error_text(e, args)}", file=sys.stderr)
        return exit_code(e)
    if args.head_corpus_cap:
        cfg = dataclasses.replace(cfg, corpus_cap=args.head_corpus_cap)
    if args.head_seed is not None:
        cfg = dataclasses.replace(cfg, seed=args.head_seed)
    compact = TrainConfig()
    if args.compact_epochs:
        compact = dataclasses.replace(compact, epochs=args.compact_epochs)
    if args.compact_corpus_cap:
        compact = dataclasses.replace(compact, corpus_cap=args.compact_corpus_cap)
    out = Path(args.out)
    saved: list[str] = []

    def save(report: dict) -> None:  # after every fold: an interrupted run keeps what it finished
        write_atomic(out / "report.json", json.dumps({**report, "complete": False}, indent=2), "the report")
        saved[:] = list(report["folds"])

    try:
        report = run_loco(args.data, systems=args.systems or DEFAULT_SYSTEMS, cache_dir=args.loco_cache, head_cfg=cfg,
                          only_folds=args.folds, log=lambda s: print(s, file=sys.stderr, flush=True),
                          compact_cfg=compact, compact_dir=out / "compact", head_input_level_db=args.head_level_db,
                          input_level_db=args.level_db, arousal_dirs=args.arousal_corpus,
                          earlier=_unfinished_report(out / "report.json"), on_fold=save, outputs_dir=out / "outputs")
    except SERError as e:
        print(f"ser-eval: error: {error_text(e, args)}", file=sys.stderr)
        return exit_code(e)
    except KeyboardInterrupt:
        kept = (f"the finished fold(s) ({', '.join(saved)}) are in {out / 'report.json'}; rerun the same command to "
                "continue from there") if saved else "no fold had finished"
        print(f"ser-eval: interrupted; {kept}", file=sys.stderr)
        return 130
    _write_results(out, {**report, "complete": True}, summary(report))
    return 0


def _unfinished_report(path: Path) -> dict | None:
    """The report an interrupted `--loco` run left at `path` (complete: false), else None. A finished report is
    not reused: rerunning a finished command runs it again."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and report.get("complete") is False else None


def rules_main(args) -> int:
    from ser_tool.errors import SERError

    from evals.classify.rules import run
    from evals.output import write_atomic

    try:
        text = run(args.run, args.system, args.alphas)
        if args.out:
            write_atomic(args.out, text + "\n", "the table")
    except SERError as e:
        print(f"ser-eval: error: {error_text(e, args)}", file=sys.stderr)
        return exit_code(e)
    print(text)
    return 0


def levels_main(args) -> int:
    from evals.classify.levels import evaluate_levels, summary

    return _backend_report(args, lambda backend, cfg: evaluate_levels(
        backend, args.data, args.split, batch_size=cfg.batch_size, limit=args.limit, progress_factory=_clips_bar), summary)


def ser_main(args) -> int:
    from evals.classify.benchmark import benchmark
    from evals.classify.render import plot_confusion, summary

    return _backend_report(args, lambda backend, cfg: benchmark(
        backend, args.data, args.split, baseline=not args.no_baseline, baseline_train=args.baseline_train,
        limit=args.limit, batch_size=cfg.batch_size, jobs=args.jobs,
        feature_cache=None if args.no_feature_cache else Path(args.feature_cache or default_feature_cache()),
        progress_factory=_clips_bar), summary, plot=plot_confusion)


def _clips_bar(total: int, desc: str):
    """A bar on a terminal; off a terminal (CI, a log file) a line every 10% or 30 s."""
    return progress_bar(total, desc, unit="clips", prefix="ser-eval: ")


def _backend_report(args, score, text_of, plot=None) -> int:
    """Load the backend the settings name (as every entry point does), `score(backend, settings)` -> report,
    write it; a SERError on the way is one line and its exit code. The output folder is checked first, not
    after the run."""
    from ser_tool import Analyzer, Settings
    from ser_tool.errors import SERError

    from evals.output import ensure_writable

    ensure_writable(args.out, "the report")
    try:
        cfg = Settings.from_args(args)
        report = score(Analyzer(cfg.backend_spec()).backend, cfg)
    except SERError as e:
        print(f"ser-eval: error: {error_text(e, args)}", file=sys.stderr)
        return exit_code(e)
    _write_results(Path(args.out), report, text_of(report), plot=plot)
    return 0


def _saved(cache_dir: Path | None) -> str:
    """What an interrupted cpbench run kept, and how to resume."""
    if cache_dir is None:
        return "nothing was saved (--no-cache); rerun to start again"
    from evals.cpbench.cache import CallCache

    return f"{CallCache(cache_dir).saved()} answered calls are saved in {cache_dir}; rerun the same command to resume"


@quiet_on_closed_stdout
def main(argv: Sequence[str] | None = None) -> int:
    """`ser-eval`. Ctrl-C, errors and failures to write end with one line on stderr, not a traceback."""
    from ser_tool.errors import SERError

    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("ser-eval: interrupted", file=sys.stderr)
        return 130
    except SERError as e:
        print(f"ser-eval: error: {error_text(e)}", file=sys.stderr)
        return exit_code(e)
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        print(f"ser-eval: error: cannot read or write{where} ({e.strerror or e}); check the path, that the folder "
              "is writable and that the disk has space", file=sys.stderr)
        return 1


def _main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "cpbench":
        return cpbench_main(args, parser)
    if args.command == "levels":
        return levels_main(args)
    if args.command == "loco-rules":
        return rules_main(args)
    if args.command != "ser":
        parser.print_help()
        return 2
    if args.loco:
        require_extra("eval", BASELINE_MODULES, command="ser-eval", what="ser-eval ser --loco")
        return loco_main(args)
    require_extra("eval", EVAL_MODULES + (() if args.no_baseline else BASELINE_MODULES), command="ser-eval",
                  what="ser-eval ser" + ("" if args.no_baseline else " (with its classical baseline; --no-baseline skips it)"))
    return ser_main(args)


def _write_results(out: Path, report: dict, text: str, plot=None) -> None:
    """report.json, summary.txt (and the plot's confusion.png) in `out`; the summary printed."""
    from evals.output import write_atomic

    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "report.json", json.dumps(report, indent=2), "the report")  # whole, as --loco's per-fold saves
    written = [out / "report.json"]
    if plot is not None:
        plot(report, out / "confusion.png")
        written.append(out / "confusion.png")
    write_atomic(out / "summary.txt", text + "\n", "the summary")
    print(text)
    print(f"\nwrote {', '.join(map(str, [*written, out / 'summary.txt']))}")


if __name__ == "__main__":
    sys.exit(main())
