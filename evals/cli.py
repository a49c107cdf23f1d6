"""`ser-eval`: evaluations. `ser-eval ser DATA_DIR...` runs the SER benchmark."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
