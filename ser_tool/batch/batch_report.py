"""`ser batch-report DIR`: what a person wants to see after a 10,000-file run.

The distribution of expressed emotions per folder (or per manifest column, `by`) and, for a run with
speaker attribution, per speaker; a valence/arousal scatter and an emotion histogram as PNGs, and the
slowest and the failed files. Writes report.md,
distribution.csv, failed.csv and the pictures into one folder; `render_markdown` gives the same text.
matplotlib is imported only to draw.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ser_tool.batch.store import read_rows
from ser_tool.errors import ConfigError
from ser_tool.labels import EMOTIONS

__all__ = ["BatchOverview", "overview", "render_markdown", "write_report"]

MAX_GROUPS_PLOTTED = 30


@dataclass
class BatchOverview:
    folder: str
    by: str  # "folder" or a manifest column
    rows: int
    failed: int
    audio_seconds: float
    distribution: dict[str, Counter] = field(default_factory=dict)  # group -> emotion counts (analysed rows)
    group_failed: Counter = field(default_factory=Counter)
    slowest: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    points: list[tuple[float, float, str]] = field(default_factory=list)  # valence, arousal, emotion
    emotions: Counter = field(default_factory=Counter)
    pictures: list[str] = field(default_factory=list)  # PNGs write_report drew
    # with speaker attribution (`ser batch --speakers`): speakers are numbered per recording in order of first
    # speech, so "speaker 1" is whoever spoke first (in a call centre's recordings, often the agent)
    speaker_counts: Counter = field(default_factory=Counter)  # speakers per recording -> recordings
    speaker_emotions: dict[int, Counter] = field(default_factory=dict)  # speaker number -> emotion counts
    speaker_seconds: Counter = field(default_factory=Counter)  # speaker number -> speaking time
    speakers_differ: int = 0  # recordings with 2+ speakers whose overall emotions are not all the same


def overview(folder: str | os.PathLike, by: str | None = None, top: int = 10) -> BatchOverview:
    """Read every row in a `ser batch` folder and tally it. by: a manifest column to group by (default: folders)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder; give the --out folder of a `ser batch` run")
    rows = read_rows(folder)
    if not rows:
        raise ConfigError(f"{folder} holds no ser batch results (no part-*.parquet or part-*.jsonl files); "
                          f"run `ser batch INPUT... --out {folder}` first")
    if by is not None and not any(by in r for r in rows):
        columns = sorted({k for r in rows for k in r} - {"timeline", "warnings", "description"})
        raise ConfigError(f"no column named {by!r} in {folder}; group by one of: {', '.join(columns)}")
    root = _common_folder([r["path"] for r in rows])
    ov = BatchOverview(str(folder), by or "folder", len(rows), 0, 0.0)
    for r in rows:
        group = _group(r, by, root)
        if r.get("error_type"):
            ov.failed += 1
            ov.group_failed[group] += 1
            ov.failures.append(r)
            ov.distribution.setdefault(group, Counter())
            continue
        ov.audio_seconds += r.get("duration") or 0.0
        ov.distribution.setdefault(group, Counter())[r["emotion"]] += 1
        ov.emotions[r["emotion"]] += 1
        if r.get("valence") is not None and r.get("arousal") is not None:
            ov.points.append((r["valence"], r["arousal"], r["emotion"]))
        speakers = [sp for sp in r.get("speakers") or [] if sp.get("emotion")]
        if r.get("speaker_count") is not None:
            ov.speaker_counts[int(r["speaker_count"])] += 1
            for sp in speakers:
                ov.speaker_emotions.setdefault(int(sp["speaker"]), Counter())[sp["emotion"]] += 1
                ov.speaker_seconds[int(sp["speaker"])] += sp.get("speaking_time") or 0.0
            ov.speakers_differ += len(speakers) > 1 and len({sp["emotion"] for sp in speakers}) > 1
    timed = [r for r in rows if r.get("seconds") is not None]
    ov.slowest = sorted(timed, key=lambda r: r["seconds"], reverse=True)[:top]
    ov.failures.sort(key=lambda r: (r.get("error_type") or "", r["path"]))
    return ov


def _common_folder(paths: Sequence[str]) -> str:
    # The folder above the deepest common one, so that groups keep a name ('calls', not '.').
    try:
        return os.path.dirname(os.path.commonpath([os.path.dirname(p) for p in paths]))
    except ValueError:  # mixed drives or relative and absolute
        return ""


def _group(row: dict[str, Any], by: str | None, root: str) -> str:
    if by is not None:
        value = row.get(by)
        return "(empty)" if value in (None, "") else str(value)
    rel = os.path.relpath(os.path.dirname(row["path"]), root) if root else os.path.dirname(row["path"])
    return "." if rel in ("", ".") else rel


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows)]


def render_markdown(ov: BatchOverview, pictures: Sequence[str] = ()) -> str:
    """The overview as Markdown: totals, the distribution table, slowest and failed files."""
    lines = [f"# ser batch report: {ov.folder}", "",
             f"{ov.rows} recordings: {ov.rows - ov.failed} analysed, {ov.failed} failed; "
             f"{ov.audio_seconds / 3600:.2f} h of audio.", ""]
    if ov.emotions:
        total = sum(ov.emotions.values())
        lines += ["Overall: " + ", ".join(f"{e} {ov.emotions[e] / total:.0%}" for e in EMOTIONS if ov.emotions[e]), ""]
    lines += [f"## Expressed emotion per {ov.by} (share of analysed recordings)", ""]
    table = []
    for group, counts in sorted(ov.distribution.items()):
        n = sum(counts.values())
        shares = [f"{counts[e] / n:.0%}" if n else "-" for e in EMOTIONS]
        table.append([group, n, ov.group_failed[group], *shares, counts.most_common(1)[0][0] if n else "-"])
    lines += _table([ov.by, "analysed", "failed", *EMOTIONS, "most frequent"], table) + [""]
    if ov.speaker_counts:
        lines += _speaker_lines(ov)
    for p in pictures:
        lines += [f"![{Path(p).stem}]({Path(p).name})", ""]
    if ov.slowest:
        lines += [f"## Slowest {len(ov.slowest)} files", ""]
        lines += _table(["seconds", "duration", "file", "result"],
                        [[f"{r['seconds']:.2f}", "-" if r.get("duration") is None else f"{r['duration']:.1f}",
                          r["path"], r.get("emotion") or r.get("error_type")] for r in ov.slowest]) + [""]
    if ov.failures:
        lines += [f"## Failed files ({len(ov.failures)})", ""]
        lines += _table(["file", "error", "message"], [[r["path"], r.get("error_type"), r.get("error")] for r in ov.failures])
        lines.append("")
    return "\n".join(lines)


def _speaker_lines(ov: BatchOverview) -> list[str]:
    multi = sum(n for k, n in ov.speaker_counts.items() if k > 1)
    lines = ["## Expressed emotion per speaker", "",
             "Speakers are numbered in each recording by who speaks first (speaker 1 opens it). Speakers per recording: "
             + ", ".join(f"{k}: {n}" for k, n in sorted(ov.speaker_counts.items()))
             + (f"; in {ov.speakers_differ} of the {multi} recordings with several speakers their overall emotions differ."
                if multi else "."), ""]
    table = []
    for number, counts in sorted(ov.speaker_emotions.items()):
        n = sum(counts.values())
        table.append([number, n, f"{ov.speaker_seconds[number] / 3600:.2f}", *(f"{counts[e] / n:.0%}" for e in EMOTIONS),
                      counts.most_common(1)[0][0]])
    return lines + _table(["speaker", "recordings", "speaking h", *EMOTIONS, "most frequent"], table) + [""]


def _plot(ov: BatchOverview, out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("the report's pictures need matplotlib: pip install -e '.[batch]' "
                          "(or pass --no-plots for the tables alone)") from None
    colours = dict(zip(EMOTIONS, plt.get_cmap("tab10").colors))
    written = []

    fig, ax = plt.subplots(figsize=(7, 4))
    counts = [ov.emotions[e] for e in EMOTIONS]
    ax.bar(EMOTIONS, counts, color=[colours[e] for e in EMOTIONS])
    ax.set_ylabel("recordings")
    ax.set_title(f"Expressed emotion of {sum(counts)} recordings")
    for x, c in enumerate(counts):
        ax.annotate(str(c), (x, c), ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "emotions.png", dpi=120)
    plt.close(fig)
    written.append(str(out / "emotions.png"))

    fig, ax = plt.subplots(figsize=(6, 6))
    if ov.points:
        alpha = max(0.15, min(0.8, 300 / len(ov.points)))
        for e in EMOTIONS:
            pts = [(v, a) for v, a, emo in ov.points if emo == e]
            if pts:
                ax.scatter(*zip(*pts), s=8, alpha=alpha, color=colours[e], label=f"{e} ({len(pts)})")
        ax.legend(fontsize=8, loc="best", markerscale=2)
    else:
        ax.text(0.5, 0.5, "no valence/arousal: the model has no dimensional head", ha="center", va="center")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="valence (0 negative .. 1 positive)", ylabel="arousal (0 calm .. 1 active)",
           title="Valence and arousal per recording")
    ax.axhline(0.5, color="grey", lw=0.5)
    ax.axvline(0.5, color="grey", lw=0.5)
    fig.tight_layout()
    fig.savefig(out / "valence_arousal.png", dpi=120)
    plt.close(fig)
    written.append(str(out / "valence_arousal.png"))

    groups = sorted(ov.distribution, key=lambda g: -sum(ov.distribution[g].values()))[:MAX_GROUPS_PLOTTED]
    groups = [g for g in groups if sum(ov.distribution[g].values())]
    if groups:
        fig, ax = plt.subplots(figsize=(8, max(2.0, 0.8 + 0.35 * len(groups))))
        left = [0.0] * len(groups)
        for e in EMOTIONS:
            shares = [ov.distribution[g][e] / sum(ov.distribution[g].values()) for g in groups]
            ax.barh(groups, shares, left=left, color=colours[e], label=e)
            left = [a + b for a, b in zip(left, shares)]
        ax.invert_yaxis()
        ax.set(xlim=(0, 1), xlabel="share of recordings", title=f"Expressed emotion per {ov.by}")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.savefig(out / "distribution.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(str(out / "distribution.png"))
    return written


def write_report(folder: str | os.PathLike, out: str | os.PathLike | None = None, *, by: str | None = None,
                 top: int = 10, plots: bool = True) -> tuple[BatchOverview, Path]:
    """Write report.md, distribution.csv, failed.csv and the PNGs into `out` (default: FOLDER/report)."""
    ov = overview(folder, by=by, top=top)
    out = Path(out) if out is not None else Path(folder) / "report"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the report folder {out} ({e.strerror}); choose another --out") from None
    ov.pictures = pictures = _plot(ov, out) if plots else []
    with (out / "distribution.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([ov.by, "analysed", "failed", *EMOTIONS])
        for group, counts in sorted(ov.distribution.items()):
            w.writerow([group, sum(counts.values()), ov.group_failed[group], *(counts[e] for e in EMOTIONS)])
    with (out / "failed.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "source", "error_type", "error"])
        w.writerows([r["path"], r.get("source"), r.get("error_type"), r.get("error")] for r in ov.failures)
    text = render_markdown(ov, pictures)
    (out / "report.md").write_text(text + "\n", encoding="utf-8")
    return ov, out
