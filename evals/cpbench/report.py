"""The run's report: a pydantic JSON log (settings, metrics, every sample), a PNG bar chart per question
type x affect mode, and a one-screen text summary."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import BaseModel, Field

from evals.cpbench.metrics import Cell, SampleResult
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
    samples: list[SampleResult]


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
    if report.calls:
        lines.append("model calls: " + ", ".join(f"{k} {v}" for k, v in report.calls.items()))
    return "\n".join(lines)


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
