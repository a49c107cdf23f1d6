"""Arousal against expressed-emotion levels (`ser-eval levels`): does the model's arousal rise with the level?

Some corpora carry no emotion category a model can be scored on, only how strongly an emotion is
expressed: BAVED (Arabic, never in any training set here) marks every clip low (tired, down), normal
(neutral) or high (strong positive or negative emotion); RAVDESS marks normal and strong. Such a
corpus tests the arousal output on speech, speakers and languages the model never saw: the model is
right when its arousal orders the levels.

Scores, for the model's arousal and for an anchor that needs no model - the clip's active speech level
as recorded (dBFS), since a louder voice is the plainest arousal cue:
- Spearman's rho between the score and the level (0, 1, 2);
- AUC for each pair of levels (the chance that a clip of the higher level scores above one of the
  lower; ties count half), pooled over all speakers and within each speaker (the mean over speakers,
  weighted by their pairs), which removes each speaker's microphone, gain and voice;
- mean score per level;
- for the model also P(neutral) as a detector of the normal level against the others (AUC).
The model gets each clip at one speech level (as the analyzer hands it audio), so it cannot use the
recording's loudness; the anchor uses nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ser_tool.data import LEVELS, read_levels, split_by_speaker
from ser_tool.errors import ConfigError
from ser_tool.labels import DIMENSIONS, EMOTIONS

PAIRS = ((0, 1), (1, 2), (0, 2))


def auc(lower: np.ndarray, higher: np.ndarray) -> float | None:
    """P(a score from `higher` > one from `lower`), ties counting half (Mann-Whitney U / n1 n2)."""
    from scipy.stats import rankdata

    lower, higher = np.asarray(lower, dtype=float), np.asarray(higher, dtype=float)
    if len(lower) == 0 or len(higher) == 0:
        return None
    ranks = rankdata(np.concatenate([lower, higher]))
    u = ranks[len(lower):].sum() - len(higher) * (len(higher) + 1) / 2
    return float(u / (len(lower) * len(higher)))


def within_speaker_auc(scores: np.ndarray, levels: np.ndarray, speakers: Sequence[str], pair: tuple[int, int]) -> float | None:
    """AUC of `pair` inside each speaker, averaged with each speaker weighted by its number of pairs."""
    total, weight = 0.0, 0
    speakers = np.asarray(speakers)
    for s in sorted(set(speakers.tolist()) - {""}):
        mine = speakers == s
        lo, hi = scores[mine & (levels == pair[0])], scores[mine & (levels == pair[1])]
        a = auc(lo, hi)
        if a is not None:
            total += a * len(lo) * len(hi)
            weight += len(lo) * len(hi)
    return total / weight if weight else None


def level_scores(scores: np.ndarray, levels: np.ndarray, speakers: Sequence[str]) -> dict:
    """Spearman rho, pooled and within-speaker AUC per pair of levels, mean score per level."""
    from scipy.stats import spearmanr

    scores, levels = np.asarray(scores, dtype=float), np.asarray(levels, dtype=int)
    present = sorted(set(levels.tolist()))
    rho = float(spearmanr(scores, levels).statistic) if len(present) > 1 and np.ptp(scores) > 0 else None
    pairs = [p for p in PAIRS if p[0] in present and p[1] in present]
    name = lambda p: f"{LEVELS[p[0]]}<{LEVELS[p[1]]}"  # noqa: E731
    return {
        "n": {LEVELS[k]: int((levels == k).sum()) for k in present},
        "spearman": rho,
        "auc": {name(p): auc(scores[levels == p[0]], scores[levels == p[1]]) for p in pairs},
        "auc_within_speaker": {name(p): within_speaker_auc(scores, levels, speakers, p) for p in pairs},
        "mean": {LEVELS[k]: float(scores[levels == k].mean()) for k in present},
    }


def evaluate_levels(backend, corpus_dirs: Sequence[str | Path], split: str = "all", *, batch_size: int = 16,
                    limit: int | None = None, progress_factory=None) -> dict:
    """Arousal of `backend` (and the loudness anchor) against the intensity levels of the corpora's clips.

    split: 'all' for corpora the model never saw; 'test' (held-out speakers, ser_tool.data.split_by_speaker)
    for corpora it was trained on."""
    from ser_tool.level import speech_level_db

    from evals.classify.benchmark import predict_clips, run_header

    if not backend.has_dimensions:
        raise ConfigError(f"the backend {backend.name!r} gives no valence/arousal/dominance, so it has no arousal to score; "
                          "choose one with dimensions (embedded, voice, meralion)")
    clips, skipped = [], {}
    for folder in corpus_dirs:
        found, unknown = read_levels(folder)
        if split != "all":
            found = split_by_speaker(found)[split]
        clips += found
        for k, n in unknown.items():
            skipped[f"{Path(folder).name}: {k}"] = n
    if not clips:
        raise ConfigError("no clip has an intensity level (low, normal, high or strong) in the manifests given")
    if limit:
        rng = np.random.default_rng(0)
        clips = [clips[i] for i in sorted(rng.choice(len(clips), size=min(limit, len(clips)), replace=False))]
    measured: dict[Path, float | None] = {}  # the anchor: each clip's speech level as recorded, from the model's decode
    bar = progress_factory(len(clips), "model") if progress_factory else None
    pred = predict_clips(backend, clips, batch_size, bar.update if bar is not None else None,
                         on_decoded=lambda clip, wave: measured.__setitem__(clip.path, speech_level_db(wave)))
    if bar is not None:
        bar.close()
    kept = pred.clips
    arousal = pred.dimensions[:, DIMENSIONS.index("arousal")]
    quiet = sum(measured[c.path] is None for c in kept)
    loudness = [-120.0 if measured[c.path] is None else measured[c.path] for c in kept]
    levels = np.array([c.level for c in kept], dtype=int)
    report = {
        **run_header("ser-levels", backend, corpus_dirs, split),
        "levels": "manifest intensity: low -> low, normal -> normal, high/strong -> high",
        "skipped": skipped,
        "failed_clips": pred.failed,
        "n_clips": len(kept),
        "digitally_silent_clips": quiet,  # no speech level: the anchor scores them -120 dBFS
        "per_corpus": {},
    }
    for name in sorted({c.corpus for c in kept}):
        mask = np.array([c.corpus == name for c in kept])
        speakers = [c.speaker for c in kept if c.corpus == name]
        neutral = pred.probabilities[mask][:, EMOTIONS.index("neutral")]
        lv = levels[mask]
        report["per_corpus"][name] = {
            "language": sorted({c.language for c in kept if c.corpus == name}),
            "speakers": len(set(speakers) - {""}),
            "arousal": level_scores(arousal[mask], lv, speakers),
            "loudness_anchor": level_scores(np.array(loudness)[mask], lv, speakers),
            "neutral_detection_auc": (auc(neutral[lv != 1], neutral[lv == 1]) if (lv == 1).any() and (lv != 1).any() else None),
        }
    return report


def summary(report: dict) -> str:
    """A plain-text table: per corpus, the model's arousal and the loudness anchor side by side."""
    f = lambda v: "   -" if v is None else f"{v:5.3f}"  # noqa: E731
    lines = [f"Arousal vs expressed-emotion level: {report['backend']} ({report['model_id']}), split {report['split']}, "
             f"{report['n_clips']} clips",
             "AUC = P(higher level scores above lower); within = inside each speaker; anchor = speech level as recorded (dBFS)"]
    for name, c in report["per_corpus"].items():
        a, l = c["arousal"], c["loudness_anchor"]
        lines.append("")
        lines.append(f"[{name}] language {', '.join(c['language']) or '?'}, {c['speakers']} speakers, clips "
                     + ", ".join(f"{k} {n}" for k, n in a["n"].items()))
        lines.append(f"  {'score':<22}{'rho':>7}" + "".join(f"{'AUC ' + p:>18}{'within':>8}" for p in a["auc"]))
        for label, s in (("model arousal", a), ("anchor: loudness", l)):
            lines.append(f"  {label:<22}{f(s['spearman']):>7}"
                         + "".join(f"{f(s['auc'][p]):>18}{f(s['auc_within_speaker'][p]):>8}" for p in s["auc"]))
        lines.append("  mean arousal per level: " + ", ".join(f"{k} {v:.3f}" for k, v in a["mean"].items())
                     + f"; P(neutral) finds the normal level: AUC {f(c['neutral_detection_auc']).strip()}")
    if report["failed_clips"]:
        lines.append(f"\n{len(report['failed_clips'])} clip(s) could not be read (see report.json)")
    return "\n".join(lines)
