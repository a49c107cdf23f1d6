"""Benchmark report -> a one-screen text summary and a PNG confusion matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _score(x: float | None) -> str:
    """A metric to three decimals, or a dash where there is none."""
    return "  -  " if x is None else f"{x:.3f}"


def summary(report: dict) -> str:
    m, b = report["metrics"], report.get("baseline", {}).get("metrics")
    lines = [
        f"SER benchmark  backend={report['backend']}  model={report['model_id']}  split={report['split']}  clips={report['n_clips']}",
        f"{'':24} {'UAR':>6} {'base':>6} {'WA':>6} {'F1':>6} {'UAR-4':>6} {'base-4':>6} {'n':>6} {'ECE':>6} {'floor':>6}",
    ]
    rows = [("overall", m["overall"], b["overall"] if b else None)]
    rows += [(f"corpus {k}", v, b["per_corpus"].get(k) if b else None) for k, v in m["per_corpus"].items()]
    rows += [(f"language {k or '?'}", v, b["per_language"].get(k) if b else None) for k, v in m["per_language"].items()]
    for name, cur, base in rows:
        lines.append(
            f"{name[:24]:24} {_score(cur['7class']['uar']):>6} {_score(base['7class']['uar']) if base else '  -  ':>6} "
            f"{_score(cur['7class']['wa']):>6} {_score(cur['7class']['macro_f1']):>6} {_score(cur['4class']['uar']):>6} "
            f"{_score(base['4class']['uar']) if base else '  -  ':>6} {cur['7class']['n']:>6} "
            f"{_score(cur['ece']) if 'ece' in cur else '  -  ':>6} "
            f"{_score(cur['ece_floor'][1]) if 'ece_floor' in cur else '  -  ':>6}"
        )
    if "ece_floor" in m["overall"]:
        lines.append("floor: the ECE that sampling alone gives on that many clips (95th percentile, for a perfectly "
                     "calibrated model with the same confidences); an ECE above it is miscalibration")
    if "ccc" in m["overall"]:
        c = m["overall"]["ccc"]
        lines.append(f"CCC valence {c['valence']:.3f}  arousal {c['arousal']:.3f}  dominance {c['dominance']:.3f}  (targets: {c['targets']})")
    recall = m["overall"]["7class"]["per_class_recall"]
    lines.append("recall per class: " + "  ".join(f"{k} {v:.2f}" for k, v in recall.items()))
    if report["failed_clips"]:
        lines.append(f"{len(report['failed_clips'])} clip(s) could not be decoded (listed in the JSON report)")
    return "\n".join(lines)


def plot_confusion(report: dict, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("model", report["metrics"]["overall"]["7class"])]
    if "baseline" in report:
        panels.append(("baseline", report["baseline"]["metrics"]["overall"]["7class"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5.2), squeeze=False)
    for ax, (title, met) in zip(axes[0], panels):
        cm = np.array(met["confusion"], dtype=float)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        labels = met["labels"]
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        for i in range(len(labels)):
            for j in range(len(labels)):
                if cm[i, j]:
                    ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xlabel("predicted")
        ax.set_ylabel("reference")
        ax.set_title(f"{title}: UAR {met['uar']:.3f}, n={met['n']}")
    fig.suptitle(f"{report['backend']} {report['model_id']} - split {report['split']}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
