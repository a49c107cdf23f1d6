"""`ser-eval`: evaluations. `ser-eval ser DATA_DIR...` runs the SER benchmark; `ser-eval cpbench generate|run`
the CP-Bench style question answering evaluation of the reference agent.
Exit codes: 0 ok; 1 bad audio; 2 bad usage or data; 3 a model could not be loaded or failed; 4 `cpbench run`
wrote its report but the answers look degenerate (see the summary's warning; --allow-degenerate accepts them)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


DEGENERATE_EXIT = 4  # `cpbench run`: the report was written, but the answers look degenerate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ser-eval", description="Evaluate ser-tool models and agents.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    s = sub.add_parser("ser", help="SER metrics (UAR, WA, macro-F1, CCC) on corpora in the manifest format",
                       description="Score a backend on the held-out speakers of corpora in the manifest format, with a classical baseline on the same split.")
    s.add_argument("data", nargs="+", metavar="DATA_DIR", help="corpus folders, each with manifest.csv")
    s.add_argument("--backend", default="embedded", choices=("embedded", "meralion", "hf"))
    s.add_argument("--model", help="model id or directory (default: the backend's)")
    s.add_argument("--device", default="cpu")
    s.add_argument("--offline", action="store_true", help="never contact the Hugging Face hub")
    s.add_argument("--split", default="test", choices=("test", "dev", "train", "all"), help="which speakers to score (default: held-out test speakers)")
    s.add_argument("--out", default="runs/ser-eval", help="folder for report.json, confusion.png, summary.txt")
    s.add_argument("--no-baseline", action="store_true", help="skip the classical baseline")
    s.add_argument("--baseline-train", nargs="+", metavar="DIR",
                   help="corpora whose train split fits the baseline (default: DATA_DIR); for a cross-corpus test name the model's training corpora")
    s.add_argument("--limit", type=int, help="score at most N clips (a smoke run)")
    s.add_argument("--batch-size", type=int, default=16)
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
    g.add_argument("--n-clips", type=int, default=28, help="test clips with content, direct and contextual questions (default 28)")
    g.add_argument("--n-situational", type=int, help="other test clips with a situational question (default: --n-clips)")
    g.add_argument("--n-stitched", type=int, default=16, help="test stitched recordings, 2 temporal questions each (default 16)")
    g.add_argument("--dev-ratio", type=float, default=0.5, help="dev counts = this x the test counts (default 0.5)")
    g.add_argument("--seed", type=int, help="generator seed (default: the fixed one in evals.cpbench.generate)")
    g.add_argument("--choices", type=int, default=4, help="options per multiple-choice question, 2..4 (default 4)")
    r = csub.add_parser("run", help="answer a QA set in each affect mode and score it")
    r.add_argument("data", metavar="DATA", help="a .jsonl / .csv file, a datasets save_to_disk folder (hub layout), or a hub id")
    r.add_argument("--model", default="local", help="answering chat model: local | local:PATH | provider:model (default local)")
    r.add_argument("--judge", help="judge chat model for open-ended scoring (local | provider:model)")
    r.add_argument("--mc", action="store_true",
                   help="score the multiple-choice form by exact choice; with --judge the open-ended form is judged too, "
                        "and the judge's agreement with the letter reported")
    r.add_argument("--modes", nargs="+", default=["none", "predicted", "oracle"], choices=("none", "predicted", "oracle"))
    r.add_argument("--temperature", type=float, default=0.0, help="answering model temperature (default 0)")
    r.add_argument("--judge-temperature", type=float, default=0.0)
    r.add_argument("--asr-model", help="Whisper checkpoint: take the words from ASR instead of the dataset's transcript")
    r.add_argument("--no-words", action="store_true",
                   help="withhold the dataset's transcript (the words are unknown; every mode answers without them)")
    r.add_argument("--allow-degenerate", action="store_true",
                   help="exit 0 even when the answers look degenerate (parse rate < 90%%, or one letter > 60%% of answers)")
    r.add_argument("--vad", default="energy", choices=("energy", "webrtc"),
                   help="speech detector of the SER analysis in mode predicted (default energy: whole short clips)")
    r.add_argument("--concurrency", type=int, default=1, help="samples in flight at once (default 1; raise it for API models)")
    r.add_argument("--limit", type=int, help="at most N samples (a smoke run)")
    r.add_argument("--cache", help="call cache folder (default OUT/cache); a rerun answers repeated calls from it")
    r.add_argument("--no-cache", action="store_true")
    r.add_argument("--out", default="runs/cpbench", help="folder for report.json, scores.png, summary.txt")


def cpbench_main(args, parser) -> int:
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
            print(f"ser-eval: error: {e}", file=sys.stderr)
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
    from tqdm import tqdm

    from agents import AgentError

    from evals.cpbench.report import summary, write_report
    from evals.cpbench.runner import evaluate

    out = Path(args.out)
    try:
        samples = load_samples(args.data)
        asr = None
        if args.asr_model:
            from ser_tool import load_asr

            asr = load_asr(args.asr_model)
        report = evaluate(
            samples, args.model, modes=args.modes, mc=args.mc, judge=args.judge, temperature=args.temperature,
            judge_temperature=args.judge_temperature, asr=asr,
            transcript="none" if args.no_words else "asr" if asr else "given",
            cache_dir=None if args.no_cache else (args.cache or out / "cache"), concurrency=args.concurrency,
            limit=args.limit, data=str(args.data), vad=args.vad,
            progress_factory=lambda total: tqdm(total=total, desc="answers", unit="q", file=sys.stderr, disable=None),
        )
    except (SERError, AgentError, ValueError) as e:
        print(f"ser-eval: error: {e}", file=sys.stderr)
        if not args.no_cache:
            print("ser-eval: finished calls are cached; rerun the same command to resume", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    paths = write_report(report, out)
    print(summary(report))
    print(f"\nwrote {paths['log']}, {paths['chart']}, {paths['summary']}")
    if report.warnings and not args.allow_degenerate:
        print(f"ser-eval: error: the answers look degenerate ({len(report.warnings)} warning(s) above); fix the model or "
              "its prompt, or pass --allow-degenerate to accept them", file=sys.stderr)
        return DEGENERATE_EXIT
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "cpbench":
        return cpbench_main(args, parser)
    if args.command != "ser":
        parser.print_help()
        return 2
    from tqdm import tqdm

    from ser_tool.backends import load_backend
    from ser_tool.errors import SERError

    from evals.ser.benchmark import benchmark
    from evals.ser.render import plot_confusion, summary

    try:
        backend = load_backend(args.backend, model=args.model, device=args.device, offline=args.offline)
        report = benchmark(
            backend, args.data, args.split, baseline=not args.no_baseline, baseline_train=args.baseline_train,
            limit=args.limit, batch_size=args.batch_size,
            progress_factory=lambda total, desc: tqdm(total=total, desc=desc, unit="clip", file=sys.stderr, disable=None),
        )
    except SERError as e:
        print(f"ser-eval: error: {e}", file=sys.stderr)
        return e.exit_code
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    plot_confusion(report, out / "confusion.png")
    text = summary(report)
    (out / "summary.txt").write_text(text + "\n")
    print(text)
    print(f"\nwrote {out / 'report.json'}, {out / 'confusion.png'}, {out / 'summary.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
