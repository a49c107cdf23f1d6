"""Decision rules and calibrations of a LOCO run's head systems, studied from its saved outputs (no training).

`ser-eval ser --loco` keeps each head system's logits per clip and fold (loco.clip_outputs, OUT/outputs/). From
them, for each strength `alpha` of the heads' prior shift (0 = the balanced decisions the class weights teach,
1 = the posterior under the training mix, what the voice backend uses), with each head's temperature refitted
on the fold's dev clips as training does, this prints per scored corpus: UAR, the classes predicted for under 5 %
of their clips, ECE (15 bins), and the mean negative log-likelihood (a proper score: lower is better, and less
noisy than ECE). A second table asks whether one extra temperature for unfamiliar speech carries over: fitted on
the other left-out corpora's clips, applied to this one's (nested, so never fitted on the clips it is scored on).
A third says what the reports' confidence words (low / moderate / high) meant on each corpus: how often they were right.

    ser-eval loco-rules runs/loco                 # the folder of a `ser-eval ser --loco` run
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ser_tool.errors import ConfigError
from ser_tool.labels import EMOTIONS
from ser_tool.train.calibration import expected_calibration_error, fit_temperature
from ser_tool.train.voice import ensemble_probabilities

from evals.classify.metrics import classification_metrics

ALPHAS = (0.0, 0.5, 1.0)
OUTPUT_KEYS = ("corpus", "label", "logits", "dev_label", "dev_logits", "prior_shift")  # of loco.clip_outputs, what is read
RARE = 0.05  # as evals.classify.loco.RARE


def read_outputs(run: str | Path, system: str | None = None) -> tuple[str, dict[str, dict[str, np.ndarray]]]:
    """(system, {fold: clip outputs}) of one head system of the LOCO run in `run` (its only one when `system` is None)."""
    import json

    run = Path(run)
    try:
        report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{run} holds no readable report.json of `ser-eval ser --loco` ({e}); name the --out folder of such a run") from None
    if not isinstance(report, dict) or report.get("kind") != "ser-loco":
        raise ConfigError(f"{run / 'report.json'} is not the report of a `ser-eval ser --loco` run; name the --out folder of such a run")
    found: dict[str, dict[str, str]] = {}
    for fold, entry in report.get("folds", {}).items():
        for name, res in entry.get("systems", {}).items():
            if res.get("info", {}).get("outputs"):
                found.setdefault(name, {})[fold] = res["info"]["outputs"]
    if not found:
        raise ConfigError(f"the LOCO run in {run} kept no per-clip outputs (runs before they were kept, or no head:* "
                          "system); run `ser-eval ser --loco` again with a head system")
    if system is None and len(found) > 1:
        raise ConfigError(f"the run has outputs of {', '.join(found)}; name one with --system")
    system = system or next(iter(found))
    if system not in found:
        raise ConfigError(f"the run has no outputs of {system}; it has {', '.join(found)}")
    missing = [f for f in found[system].values() if not (run / "outputs" / f).is_file()]
    if missing:
        raise ConfigError(f"{run / 'outputs'} lacks {', '.join(missing)}; copy the run's whole folder")
    outputs = {}
    for fold, name in found[system].items():
        try:
            with np.load(run / "outputs" / name) as saved:
                outputs[fold] = {key: saved[key] for key in OUTPUT_KEYS}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # damaged, cut short, or not ours
            raise ConfigError(f"{run / 'outputs' / name} cannot be read ({e}); run that LOCO run again") from None
    return system, outputs


def probabilities(out: Mapping[str, np.ndarray], alpha: float, extra_temperature: float = 1.0) -> np.ndarray:
    """The ensemble's probabilities of the scored clips with `alpha` times each head's prior shift, each head's
    temperature refitted on the dev clips after that shift (alpha=1 reproduces what the fold scored, up to the
    fit's tolerance), then every head's logits divided by `extra_temperature` too."""
    shifts = alpha * np.asarray(out["prior_shift"])
    temperatures = [fit_temperature(z_dev + s, out["dev_label"]) * extra_temperature
                    for z_dev, s in zip(out["dev_logits"], shifts)]
    return ensemble_probabilities(out["logits"], shifts, temperatures)


def scores(probs: np.ndarray, labels: np.ndarray) -> dict:
    """UAR, per-class recall, rare classes (< 5 % of their clips), ECE and mean NLL of one block of clips."""
    m = classification_metrics(labels, probs.argmax(axis=1), EMOTIONS)
    return {"uar": m["uar"], "per_class_recall": m["per_class_recall"],
            "rare_classes": [e for e, r in m["per_class_recall"].items() if r < RARE],
            "ece": expected_calibration_error(probs, labels),
            "nll": float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())}


def rule_table(outputs: Mapping[str, Mapping[str, np.ndarray]], alphas: Sequence[float] = ALPHAS) -> dict:
    """{fold: {corpus: {alpha: scores}}}; the `within` fold also gets its pooled clips as corpus "all"."""
    table: dict = {}
    for fold, out in outputs.items():
        table[fold] = {}
        for alpha in alphas:
            p = probabilities(out, alpha)
            blocks = {c: out["corpus"] == c for c in sorted(set(out["corpus"].tolist()))}
            if fold == "within":
                blocks["all"] = np.ones(len(p), dtype=bool)
            for corpus, m in blocks.items():
                table[fold].setdefault(corpus, {})[alpha] = scores(p[m], out["label"][m])
    return table


def nested_temperature(outputs: Mapping[str, Mapping[str, np.ndarray]], alpha: float) -> dict:
    """For each left-out fold: the extra temperature fitted (by likelihood) on the other left-out folds' clips, and
    the fold's ECE and NLL without and with it. Needs at least two left-out folds."""
    left_out = {f: o for f, o in outputs.items() if f != "within"}
    if len(left_out) < 2:
        raise ConfigError("a nested temperature needs at least two left-out folds in the run")
    probs = {f: probabilities(o, alpha) for f, o in left_out.items()}
    result = {}
    for fold, out in left_out.items():
        others = [f for f in left_out if f != fold]
        t = fit_temperature(np.log(np.clip(np.concatenate([probs[f] for f in others]), 1e-12, None)),
                            np.concatenate([left_out[f]["label"] for f in others]))
        result[fold] = {"temperature": t, "fitted_on": others, "before": scores(probs[fold], out["label"]),
                        "after": scores(probabilities(out, alpha, t), out["label"])}
    return result


def confidence_bands(outputs: Mapping[str, Mapping[str, np.ndarray]], alpha: float = 1.0) -> dict:
    """{fold: {corpus: {word: {"share", "right", "mean_top"}}}}: what the reports' confidence words (low / moderate /
    high: ser_tool.describe.confidence_word of the reading a report would hold) meant on these clips - how many clips
    got each word and how often its top emotion was right."""
    from ser_tool.aggregate import affect_from
    from ser_tool.describe import confidence_word

    bands = {}
    for fold, out in outputs.items():
        p = probabilities(out, alpha)
        right = p.argmax(axis=1) == out["label"]
        # each clip's word as a report would give it: the same Affect, the same function
        words = np.array([confidence_word(affect_from(row, None, None, len(EMOTIONS))) for row in p])
        bands[fold] = {}
        for corpus in sorted(set(out["corpus"].tolist())):
            m = out["corpus"] == corpus
            bands[fold][corpus] = {w: {"share": float(np.mean(words[m] == w)),
                                       "right": float(right[m][words[m] == w].mean()) if np.any(words[m] == w) else None,
                                       "mean_top": float(p[m].max(axis=1)[words[m] == w].mean()) if np.any(words[m] == w) else None}
                                   for w in ("low", "moderate", "high")}
    return bands


def render(table: dict, nested: dict[float, dict], system: str = "", bands: dict | None = None) -> str:
    alphas = sorted({a for corpora in table.values() for rows in corpora.values() for a in rows})
    lines = [f"Decision rules{f' of {system}' if system else ''}: alpha = how much of each head's prior shift is applied (0: the "
             "balanced decisions the class weights teach; 1: the posterior under the training mix, the default), each head's "
             "temperature refitted on the fold's dev clips. Cells: UAR / ECE / NLL, then the classes under 5 % (- none).", ""]
    head = f"{'fold: corpus':44s}" + "".join(f"{f'alpha {a:g}':34s}" for a in alphas)
    lines += [head, "-" * len(head)]
    for fold, corpora in table.items():
        for corpus, rows in corpora.items():
            cells = [f"{r['uar']:.3f} / {r['ece']:.3f} / {r['nll']:.3f} {','.join(e[:4] for e in r['rare_classes']) or '-'}"
                     for r in (rows[a] for a in alphas)]
            lines.append(f"{f'{fold}: {corpus}'[:43]:44s}" + "".join(f"{c:34s}" for c in cells))
    lines += ["", "Per-class recall on the left-out corpora:"]
    for fold, corpora in table.items():
        if fold == "within":
            continue
        for corpus, rows in corpora.items():
            for a in alphas:
                lines.append(f"  {corpus[:20]:20s} alpha {a:<4g} " + " ".join(f"{e[:4]} {v:.2f}" for e, v in rows[a]["per_class_recall"].items()))
    if nested:
        lines += ["", "One extra temperature for unfamiliar speech, fitted on the other left-out corpora (nested): ECE and "
                  "NLL of the fold's clips without -> with it"]
        for a, folds in nested.items():
            lines.append(f"  alpha {a:g}: " + "; ".join(
                f"{fold} x{r['temperature']:.2f} ECE {r['before']['ece']:.3f} -> {r['after']['ece']:.3f}, NLL "
                f"{r['before']['nll']:.3f} -> {r['after']['nll']:.3f}" for fold, r in folds.items()))
    if bands:
        lines += ["", "What the reports' confidence words meant (alpha 1, the default): share of the clips, and how often the "
                  "top emotion was right (mean top probability in brackets)"]
        for fold, corpora in bands.items():
            for corpus, words in corpora.items():
                lines.append(f"  {f'{fold}: {corpus}'[:43]:44s}" + "   ".join(
                    f"{w} {b['share']:.2f} right " + ("-" if b["right"] is None else f"{b['right']:.2f} ({b['mean_top']:.2f})")
                    for w, b in words.items()))
    return "\n".join(lines)


def run(folder: str | Path, system: str | None = None, alphas: Sequence[float] = ALPHAS) -> str:
    system, outputs = read_outputs(folder, system)
    left_out = [f for f in outputs if f != "within"]
    nested = {a: nested_temperature(outputs, a) for a in alphas} if len(left_out) >= 2 else {}
    return render(rule_table(outputs, alphas), nested, system, confidence_bands(outputs))
