"""The run's report: a pydantic JSON log (settings, metrics, every sample), a PNG bar chart per question
type x affect mode (with the chance level), and a one-screen text summary: the table, the share of the
none -> oracle gap that predicted closes, why predicted answers missed, the judge's agreement with the
letter, and loud warnings when the answers are degenerate."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import BaseModel, Field

from evals.cpbench.metrics import Agreement, Cell, ErrorSplit, GapClosed, SampleResult
from evals.output import output_error

__all__ = ["Report", "plot", "summary", "write_report"]


class Report(BaseModel):
    kind: str = "cpbench-eval"
    date: str = Field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    data: str
    model: str
    scorer: str = Field(description="'choice' (exact letter) or 'llm-judge' (AudioBench 0-5 rubric x 20).")
    judge: str | None = None
    temperature: float | None = None
    transcript: str = Field(description="'given' (the dataset's words) or 'asr'.")
    modes: list[str]
    n_samples: int
    calls: dict[str, int] = Field(default_factory=dict, description="Chat-model calls made and answered from the cache.")
    failed: int = Field(default=0, description="Answers that could not be produced (audio not heard); scored 0.")
    metrics: dict[str, dict[str, Cell]]
    gap_closed: dict[str, GapClosed] = Field(
        default_factory=dict, description="(predicted - none) / (oracle - none) per group: 'paralinguistic' (every type but content), 'overall', each type.")
    error_split: dict[str, ErrorSplit] = Field(default_factory=dict, description="Predicted-mode misses: SER reading wrong vs LLM misuse.")
    chance: float | None = Field(default=None, description="Accuracy % of random letters (multiple choice).")
    warnings: list[str] = Field(default_factory=list, description="Degenerate answers (unreadable, one letter for all).")
    agreement: Agreement | None = Field(default=None, description="Judge vs multiple-choice verdict, when both were run.")
    samples: list[SampleResult]
    judged_metrics: dict[str, dict[str, Cell]] | None = Field(default=None, description="Open-ended answers by the judge, when run beside --mc.")
    judged: list[SampleResult] | None = Field(default=None, description="The open-ended answers and their judge ratings, when run beside --mc.")


def summary(report: Report) -> str:
    types = [t for t in next(iter(report.metrics.values()), {}) if t != "overall"]
    groups = ["overall", *types]
    unit = "accuracy %" if report.scorer == "choice" else "judge score (mean rating x 20)"
    lines = [f"CP-Bench eval  data={Path(report.data).name}  model={report.model}  scorer={report.scorer}"
             + (f" judge={report.judge}" if report.judge else "") + f"  T={report.temperature}  transcript={report.transcript}",
             f"{report.n_samples} samples x {len(report.modes)} modes; {unit}, [bootstrap 95% CI], (difference to none)"]
    width = max(len(g) for g in groups) + 2
    lines.append(f"{'':{width}}" + "".join(f"{m:>28}" for m in report.modes) + f"{'n':>6}")
    for g in groups:
        cells = [report.metrics[m].get(g) for m in report.modes]
        row = f"{g:{width}}"
        for c in cells:
            if c is None:
                row += f"{'-':>28}"
                continue
            text = f"{c.mean:5.1f} [{c.ci95[0]:4.1f},{c.ci95[1]:5.1f}]"
            if c.diff_vs_none is not None:
                text += f" ({c.diff_vs_none:+5.1f})"
            row += f"{text:>28}"
        row += f"{next((c.n for c in cells if c), 0):>6}"
        lines.append(row)
    parse = "  ".join(f"{m} {report.metrics[m]['overall'].parse_rate:.0%}" for m in report.modes)
    lines.append(f"{'answers read (letter / rating parsed)':}: {parse}")
    if report.failed:
        lines.append(f"{report.failed} answer(s) could not be produced (see 'error' in report.json); scored 0")
    if report.chance is not None:
        lines.append(f"chance (random letters): {report.chance:.1f}%")
    lines += _gap_lines(report) + _error_lines(report) + _judge_lines(report)
    if report.calls:
        lines.append("model calls: " + ", ".join(f"{k} {v}" for k, v in report.calls.items()))
    if report.warnings:
        bar = "!" * 78
        lines += [bar, "WARNING: the answers look degenerate; the scores above may say nothing about the model:"]
        lines += [f"  - {w}" for w in report.warnings]
        lines.append(bar)
    return "\n".join(lines)


def _gap_lines(report: Report) -> list[str]:
    if not report.gap_closed:
        return []
    lines = ["share of the none -> oracle gap closed by predicted, (pred - none) / (oracle - none) [paired bootstrap 95% CI]:"]
    width = max(len(g) for g in report.gap_closed) + 2
    for group, g in report.gap_closed.items():
        scores = (f"  (none {g.none:.1f}, predicted {g.predicted:.1f}, oracle {g.oracle:.1f}; n {g.n})"
                  if g.none is not None else "")
        if g.value is None:
            text = g.note or "undefined"
        else:
            text = f"{g.value:6.0%} " + (f"[{g.ci95[0]:.0%}, {g.ci95[1]:.0%}]" if g.ci95 else f"({g.note})")
        lines.append(f"  {group:{width}}{text}{scores}")
    return lines


def _error_lines(report: Report) -> list[str]:
    if not report.error_split:
        return []
    lines = ["predicted-mode misses: SER reading wrong (vs the oracle label) | LLM misused a right reading | not comparable:"]
    width = max(len(g) for g in report.error_split) + 2
    for group, e in report.error_split.items():
        share = lambda k: f" ({k / e.misses:.0%})" if e.misses else ""  # noqa: E731
        right = f"; SER right on {e.ser_right_rate:.0%} of all {e.answered}" if e.ser_right_rate is not None else ""
        lines.append(f"  {group:{width}}{e.misses:3d} misses: {e.ser_wrong} SER wrong{share(e.ser_wrong)} | "
                     f"{e.llm_misuse} LLM misuse{share(e.llm_misuse)} | {e.unknown} not comparable{right}")
    return lines


def _judge_lines(report: Report) -> list[str]:
    if report.judged_metrics is None:
        return []
    cells = "  ".join(f"{m} {report.judged_metrics[m]['overall'].mean:.1f}" for m in report.modes if m in report.judged_metrics)
    lines = [f"open-ended answers, judge score (mean rating x 20): {cells}"]
    a = report.agreement
    if a is not None and a.n:
        kappa = f"{a.kappa:.2f}" if a.kappa is not None else "undefined"
        per_mode = ", ".join(f"{m} {v:.0%}" for m, v in a.per_mode.items())
        lines.append(f"judge (rating >= 3) vs letter agree on {a.agreement:.0%} of {a.n} (Cohen's kappa {kappa}; {per_mode}); "
                     f"both right {a.both_right}, both wrong {a.both_wrong}, letter only {a.mc_only}, judge only {a.judge_only}")
    elif a is not None:
        lines.append("judge vs letter: no sample was readable both ways")
    return lines


def plot(report: Report, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = list(next(iter(report.metrics.values())))
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(groups) * max(1, len(report.modes)) / 3, 4.2))
    width = 0.8 / max(1, len(report.modes))
    for k, mode in enumerate(report.modes):
        cells = [report.metrics[mode].get(g) for g in groups]
        means = [c.mean if c else 0 for c in cells]
        err = np.array([[c.mean - c.ci95[0], c.ci95[1] - c.mean] if c else [0, 0] for c in cells]).T
        ax.bar(np.arange(len(groups)) + (k - (len(report.modes) - 1) / 2) * width, means, width, yerr=err,
               capsize=3, label=mode)
    if report.chance is not None:
        ax.axhline(report.chance, color="0.3", linestyle="--", linewidth=1, label=f"chance {report.chance:.0f}%")
    ax.set_xticks(range(len(groups)), [g.replace("_", "\n") for g in groups])
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy %" if report.scorer == "choice" else "judge score (0-100)")
    ax.set_title(f"{report.model} - {report.scorer}", fontsize=10)
    ax.legend(title="affect", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(report: Report, out: str | Path) -> dict[str, Path]:
    """report.json, scores.png and summary.txt in `out`; an OutputError (saying what to do) if they cannot be written."""
    out = Path(out)
    paths = {"log": out / "report.json", "chart": out / "scores.png", "summary": out / "summary.txt"}
    current = out
    try:
        out.mkdir(parents=True, exist_ok=True)
        current = paths["log"]
        paths["log"].write_text(report.model_dump_json(indent=2), encoding="utf-8")
        current = paths["chart"]
        plot(report, paths["chart"])
        current = paths["summary"]
        paths["summary"].write_text(summary(report) + "\n", encoding="utf-8")
    except OSError as e:
        raise output_error(e, current, "the report") from None
    return paths
