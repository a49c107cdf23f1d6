"""Leave-one-corpus-out evaluation: train without a corpus, score every clip of it.

Corpora that share speaker ids (RAVDESS speech and song: the same actors) form one group: they are
left out together and never apart. For each group: the systems are fitted on the other corpora
(their train + test speakers; their dev speakers choose C / the epoch / the temperature) and score
every clip of the group. One more fold, `within`, is the usual speaker-independent split of all
corpora (fit on train speakers, score test speakers).

Systems, side by side in one run:
- `mfcc-lr`: the classical baseline (evals.classify.baseline: MFCC statistics + logistic regression);
- `lr:REP[+REP]`: a frozen representation's utterance vector + logistic regression
  (`resemblyzer-utt` = the GE2E utterance embedding; other reps: mean+std of frames; prosody:
  its functionals);
- `head:REP[+REP]`: the voice head (ser_tool.backends.voice_model) trained on the frames with the
  hybrid objective, calibrated as `ser train` does (prior shift, temperature fitted on dev);
- `compact`: the shipped model's architecture (CompactSER) trained from scratch on the fold by the
  `ser train` loop (ser_tool.train.loop.train_splits; dev picks the epoch), then run on every scored clip
  as `ser-eval ser` runs a model (evals.classify.benchmark.predict_clips: the embedded backend, one whole
  clip per input at its speech level).
`default_switch` states issue 11's rule for replacing the compact model as the default, from a report.
Every system fits on at most `fit_cap` clips of each training corpus (a fixed random subset, the same in
every fold; the head draws `corpus_cap` of them per epoch), so one large corpus does not swamp the others.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ser_tool.errors import ConfigError
from ser_tool.labels import EMOTIONS
from ser_tool.representations import FeatureCache, Features, load_representation
from ser_tool.data import HIGH_AROUSAL, Clip, read_corpus, split_by_speaker
from ser_tool.train.loop import TrainConfig
from ser_tool.train.calibration import ece_noise_floor, expected_calibration_error
from ser_tool.train.voice import (ClipFeatures, VoiceTrainConfig, arousal_clips, arousal_set, ensemble_probabilities,
                                   head_logits, joined, train_voice_heads, training_set)

from evals.classify.metrics import classification_metrics

DEFAULT_SYSTEMS = ("mfcc-lr", "lr:resemblyzer-utt", "lr:resemblyzer", "lr:whisper-base", "lr:prosody",
                   "lr:resemblyzer+prosody", "head:resemblyzer", "head:resemblyzer+prosody")
UTTERANCE_IS_POOLED = {"prosody", "whisper-base", "whisper-base-mid", "mfcc"}  # their utterance vector already is the clip statistics
RARE = 0.05  # a class predicted for fewer than 5 % of its own clips is flagged
Log = Callable[[str], None]


class SpeechLevel:
    """Each clip's active speech level as recorded (dBFS; NaN for no speech): the arousal anchor that needs no
    model (as in `ser-eval levels`), cached like a representation. Never levelled first, unlike the systems."""

    name = "speech-level"
    id = "speech-level-v1"
    frame_dim = 1
    utterance_dim = 1

    def features(self, wave: np.ndarray) -> Features:
        from ser_tool.level import speech_level_db

        level = speech_level_db(wave)
        return Features(np.zeros((1, 1), dtype=np.float32), np.array([np.nan if level is None else level], np.float32))


def arousal_auc(clips: Sequence[Clip], arousal: np.ndarray) -> dict[str, float | None]:
    """Per corpus: do a system's arousal outputs (trained toward the NRC anchors) rank the clips of the high-arousal
    categories (ser_tool.data.HIGH_AROUSAL) above neutral and sad ones? The probability that they do (AUC, ties
    half, as `ser-eval levels` counts; 0.5 = chance); None where either group is missing. NaN scores (no speech)
    are left out."""
    from evals.classify.levels import auc

    high = np.array([c.label in HIGH_AROUSAL for c in clips])
    corpora = np.array([c.corpus for c in clips])
    arousal = np.asarray(arousal, dtype=np.float64)
    out: dict[str, float | None] = {}
    for name in sorted(set(corpora)):
        m = (corpora == name) & np.isfinite(arousal)
        out[name] = auc(arousal[m & ~high], arousal[m & high])
    return out


class MFCCBaseline:
    """The classical baseline's 86 utterance statistics as a cacheable representation."""

    name = "mfcc"
    id = "mfcc-baseline-v1"
    frame_dim = 1
    utterance_dim = 86

    def features(self, wave: np.ndarray) -> Features:
        from evals.classify.baseline import acoustic_features

        return Features(np.zeros((1, 1), dtype=np.float32), acoustic_features(wave))


def corpus_groups(corpora: dict[str, list[Clip]]) -> list[list[str]]:
    """Corpus names grouped so that corpora sharing a speaker id are in one group."""
    speakers = {name: {c.speaker for c in clips if c.speaker} for name, clips in corpora.items()}
    groups: list[set[str]] = []
    for name in sorted(corpora):
        joined = [g for g in groups if any(speakers[name] & speakers[o] for o in g)]
        merged = {name}.union(*joined) if joined else {name}
        groups = [g for g in groups if g not in joined] + [merged]
    return [sorted(g) for g in sorted(groups, key=lambda g: sorted(g)[0])]


def folds(corpora: dict[str, list[Clip]], within: bool = True, fit_cap: int = 2000) -> list[dict]:
    """[{name, fit, dev, score}]: one fold per corpus group, plus the within-corpora split."""
    out = []
    for group in corpus_groups(corpora):
        rest = [c for name, clips in corpora.items() if name not in group for c in clips]
        if not rest:
            continue
        split = split_by_speaker(rest)
        out.append({"name": "+".join(group), "left_out": group, "fit": cap_per_corpus(split["train"] + split["test"], fit_cap), "dev": split["dev"],
                    "score": [c for name in group for c in corpora[name]]})
    if within:
        split = split_by_speaker([c for clips in corpora.values() for c in clips])
        out.append({"name": "within", "left_out": [], "fit": cap_per_corpus(split["train"], fit_cap), "dev": split["dev"],
                    "score": split["test"]})
    return out


def cap_per_corpus(clips: Sequence[Clip], cap: int, seed: int = 0) -> list[Clip]:
    """At most `cap` clips of each corpus: those with the lowest hash of (seed, file name), so the
    subset of a corpus is the same in every fold (and nearly the same for the within split)."""
    out = []
    for name in sorted({c.corpus for c in clips}):
        mine = [c for c in clips if c.corpus == name]
        if len(mine) > cap:
            rank = sorted(range(len(mine)), key=lambda i: zlib.crc32(f"{seed}:{mine[i].path.name}".encode()))
            keep = set(rank[:cap])
            mine = [c for i, c in enumerate(mine) if i in keep]
        out += mine
    return out


def extraction_order(corpora: dict[str, list[Clip]], fit_cap: int) -> list[Clip]:
    """Every clip, those any fold fits on, selects on or scores within first, then the left-out-only
    rest (most of a large corpus), so the folds that only train on a large corpus can start early."""
    needed: set = set()
    for fold in folds(corpora, True, fit_cap):
        needed |= {c.path for c in fold["fit"] + fold["dev"]}
        if fold["name"] == "within":
            needed |= {c.path for c in fold["score"]}
    every = [c for name in sorted(corpora, key=lambda n: len(corpora[n])) for c in corpora[name]]
    return [c for c in every if c.path in needed] + [c for c in every if c.path not in needed]


def labels_of(clips: Sequence[Clip]) -> np.ndarray:
    return np.array([EMOTIONS.index(c.label) for c in clips], dtype=int)


def score_block(clips: Sequence[Clip], probs: np.ndarray, arousal: np.ndarray | None = None) -> dict:
    """Per scored corpus: UAR, per-class recall, classes predicted for < 5 % of their clips, confusion; with
    `arousal` (a system's arousal output per clip), its arousal_auc (see arousal_auc)."""
    y, pred = labels_of(clips), probs.argmax(axis=1)
    corpora = np.array([c.corpus for c in clips])
    out = {}
    for name in sorted(set(corpora)):
        m = corpora == name
        metrics = classification_metrics(y[m], pred[m], EMOTIONS)
        metrics["rare_classes"] = [e for e, r in metrics["per_class_recall"].items() if r < RARE]
        metrics["ece"] = expected_calibration_error(probs[m], y[m])
        metrics["ece_floor"] = ece_noise_floor(probs[m])[1]  # what sampling alone gives on this many clips
        out[name] = metrics
    if arousal is not None:
        for name, auc in arousal_auc(clips, arousal).items():
            out[name]["arousal_auc"] = auc
    return out


LR_C = (0.01, 0.1, 1.0)


def run_lr(feats: ClipFeatures, names: Sequence[str], fold: dict, use_utterance: bool) -> tuple[np.ndarray, dict]:
    """StandardScaler + balanced multinomial logistic regression, C chosen on dev by UAR (the MFCC
    baseline keeps its own recipe, evals.classify.baseline.fit_and_predict)."""
    def vector(clip):
        # the GE2E utterance embedding only when asked (-utt); prosody: its functionals; Whisper: mean+std of frames
        return np.concatenate([feats.utterance(clip.path, [n]) if use_utterance or n in UTTERANCE_IS_POOLED
                               else _mean_std(feats.frames(clip.path, [n])) for n in names])

    def matrix(clips):
        return np.stack([vector(c) for c in clips])

    fit, dev = fold["fit"], fold["dev"]
    x, y, xs = matrix(fit), labels_of(fit), matrix(fold["score"])
    if names == ["mfcc"]:
        from evals.classify.baseline import fit_and_predict

        return fit_and_predict((x, y), (matrix(dev), labels_of(dev)) if dev else None, xs)
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    x, xs = scaler.transform(x), scaler.transform(xs)
    xd, yd = (scaler.transform(matrix(dev)), labels_of(dev)) if dev else (None, None)
    best = None
    for c in LR_C:
        clf = LogisticRegression(C=c, class_weight="balanced", max_iter=500, tol=1e-3).fit(x, y)
        dev_uar = classification_metrics(yd, clf.predict(xd), EMOTIONS)["uar"] if dev else 0.0
        if best is None or dev_uar > best[0]:
            best = (dev_uar, c, clf)
    probs = np.zeros((len(xs), len(EMOTIONS)))
    probs[:, best[2].classes_] = best[2].predict_proba(xs)
    return probs, {"C": best[1], "dev_uar": best[0], "n_train": int(len(y))}


def _mean_std(frames: np.ndarray) -> np.ndarray:
    f = frames.astype(np.float32)
    return np.concatenate([f.mean(axis=0), f.std(axis=0)])


def run_head(feats: ClipFeatures, names: Sequence[str], fold: dict, cfg: VoiceTrainConfig, log: Log,
             level_clips: Sequence = ()) -> tuple[np.ndarray, dict, np.ndarray, dict]:
    """The head(s) trained on the fold: (calibrated probabilities, summary, valence/arousal/dominance, outputs) of its
    scored clips. outputs (clip_outputs): each head's logits as trained on the scored and the dev clips, with its prior
    shift and temperature, so that other decision rules and calibrations can be studied without training again.
    level_clips: clips with a level and no category (ser_tool.data.LevelClip) added to the fit set as arousal-only examples."""
    train, dev = training_set(feats, fold["fit"], names, cfg.degraded_variants), feats.frame_set(fold["dev"], names)
    if level_clips:
        train = joined(train, arousal_set(feats, level_clips, names))
    from scipy.special import softmax

    model, summary = train_voice_heads(train, dev, names, cfg, log=log)
    outputs = clip_outputs(model, feats, names, fold)  # one pass of each head over the scored and the dev clips
    probs = ensemble_probabilities(outputs["logits"], outputs["prior_shift"], outputs["temperature"])
    uncal = np.mean(softmax(outputs["logits"], axis=2), axis=0)
    y = labels_of(fold["score"])
    corpora = np.array([c.corpus for c in fold["score"]])
    summary["ece_uncalibrated"] = {n: expected_calibration_error(uncal[corpora == n], y[corpora == n]) for n in sorted(set(corpora))}
    for run in [summary, *summary.get("heads", [])]:
        run.pop("history", None)
    return probs, summary, outputs["dims"], outputs


def clip_outputs(model, feats: ClipFeatures, names: Sequence[str], fold: dict) -> dict[str, np.ndarray]:
    """Per head h (a VoiceHead counts as one): logits[h] / dev_logits[h] = the logits as trained (before the prior
    shift and the temperature) of the fold's scored / dev clips (ser_tool.train.voice.head_logits); prior_shift[h],
    temperature[h]; the scored clips' valence/arousal/dominance averaged over the heads (dims); the clips' paths,
    corpora and labels (index into EMOTIONS). ensemble_probabilities(logits, prior_shift, temperature) is what the
    system scored."""
    logits, shifts, temperatures, dims = head_logits(model, [feats.frames(c.path, names) for c in fold["score"]])
    dev_logits = head_logits(model, [feats.frames(c.path, names) for c in fold["dev"]])[0]
    return {"path": np.array([str(c.path) for c in fold["score"]]), "corpus": np.array([c.corpus for c in fold["score"]]),
            "label": labels_of(fold["score"]), "logits": logits, "dims": dims,
            "dev_corpus": np.array([c.corpus for c in fold["dev"]]), "dev_label": labels_of(fold["dev"]),
            "dev_logits": dev_logits, "prior_shift": shifts, "temperature": temperatures}


def outputs_file(folder: str | Path, fold: str, system: str) -> Path:
    """Where run_loco keeps a head system's clip_outputs for one fold (an .npz; the name made safe for any file system)."""
    import re

    def safe(name: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", name)

    return Path(folder) / f"{safe(fold)}__{safe(system)}.npz"


def run_compact(fold: dict, cfg: TrainConfig | None = None, model_dir: str | Path | None = None,
                log: Log = print) -> tuple[np.ndarray, dict, list[Clip], np.ndarray | None]:
    """Train CompactSER on the fold's fit clips (its dev clips choose the epoch) and score the fold's clips.

    The model folder is `model_dir` when given (kept), else a temporary folder (removed after scoring).
    Scoring is `ser-eval ser`'s path: the folder loaded as the embedded backend, each clip one whole input
    brought to the model's speech level (evals.classify.benchmark.predict_clips). Returns the (N, 7)
    probabilities in EMOTIONS order, the summary, the N clips scored (those that decoded, in order) and their
    (N, 3) valence/arousal/dominance."""
    import tempfile

    from ser_tool.backends import BackendSpec, load_backend
    from ser_tool.train.loop import train_splits

    from evals.classify.benchmark import predict_clips

    cfg = cfg or TrainConfig()
    with tempfile.TemporaryDirectory(prefix="ser-loco-compact-") as tmp:
        folder = Path(model_dir) if model_dir is not None else Path(tmp)
        trained = train_splits({"train": fold["fit"], "dev": fold["dev"]}, folder, cfg, log=lambda line: log(f"  compact: {line}"),
                               data=[f"leave-one-corpus-out fold {fold['name']}"])
        pred = predict_clips(load_backend(BackendSpec("embedded", model=str(folder))), fold["score"])
    info = {"best_epoch": trained["best_epoch"], "epochs": cfg.epochs, "dev_mean_uar": trained["best"]["dev_mean_uar"],
            "dev_mean_uar_by_epoch": [round(h["dev_mean_uar"], 4) for h in trained["history"]],
            "n_train": sum(sum(row.values()) for row in trained["clips"]["train"].values()),
            "train_seconds": trained["train_seconds"], "model_dir": str(model_dir) if model_dir is not None else None,
            "scored_by": "evals.classify.benchmark.predict_clips (embedded backend, whole clip, at its speech level)",
            "undecodable": trained["undecodable"] + pred.failed}
    return pred.probabilities, info, pred.clips, pred.dimensions


def run_loco(corpus_dirs: Sequence[str | Path], systems: Sequence[str] = DEFAULT_SYSTEMS, cache_dir: str | Path | None = None,
             within: bool = True, fit_cap: int = 2000, head_cfg: VoiceTrainConfig | None = None, only_folds: Sequence[str] | None = None,
             log: Log = print, compact_cfg: TrainConfig | None = None, compact_dir: str | Path | None = None,
             head_input_level_db: float | None = None, input_level_db: float | None = None,
             arousal_dirs: Sequence[str | Path] = (), earlier: dict | None = None,
             on_fold: Callable[[dict], None] | None = None, outputs_dir: str | Path | None = None) -> dict:
    """compact_cfg: the `compact` system's training settings (default TrainConfig()); compact_dir: a folder
    that keeps its model of each fold (compact_dir/FOLD), else each model lives in a temporary folder.
    head_input_level_db: the head:* systems see every clip at this active speech level, as `ser train
    --backbone` trains them and the voice backend hears its input (None: as the other feature systems).
    input_level_db: every feature system (mfcc-lr, lr:*, head:*) sees every clip at this active speech level,
    so the anchors hear what the heads hear (None: at the corpora's own levels).
    arousal_dirs: corpora with expressed-emotion levels and no categories: every head:* system also trains on
    them as arousal-only examples in every fold (ser_tool.train.voice.arousal_set); they are never scored.
    earlier: a report of an earlier run (e.g. one that was interrupted); its folds are taken as they are, not run
    again, when it was made with the same settings (same_settings). on_fold(report): called after each fold, with
    the report so far, so that a caller can save it. outputs_dir: each head:* system's clip_outputs per fold go there
    (outputs_file), named in its info as "outputs"."""
    from ser_tool.parts import default_feature_dir

    corpora = {}
    dropped = {}
    for folder in corpus_dirs:
        corpus = read_corpus(folder)
        corpora[corpus.name] = corpus.clips
        if corpus.dropped:
            dropped[corpus.name] = dict(corpus.dropped)
    level_clips = arousal_clips(arousal_dirs)
    clash = sorted({c.corpus for c in level_clips} & set(corpora))
    if clash:  # a left-out corpus must be unseen: its clips cannot also train arousal
        raise ConfigError(f"{', '.join(clash)} is both an evaluated corpus and an arousal-only corpus; name it once")
    rep_names = sorted({n for s in systems for n in _parse(s)[1] if n not in ("mfcc",)})
    reps = [load_representation(n) for n in rep_names] + ([MFCCBaseline()] if "mfcc-lr" in systems else [])
    cache = FeatureCache(cache_dir or default_feature_dir())

    def at_level(db: float | None) -> ClipFeatures:
        from ser_tool.representations.degrade import LevelledRepresentation

        return ClipFeatures(cache, reps if db is None else [LevelledRepresentation(r, db) for r in reps])

    feats = at_level(input_level_db)
    head_feats = feats if head_input_level_db in (None, input_level_db) else at_level(head_input_level_db)
    head_cfg = head_cfg or VoiceTrainConfig()
    report = {"kind": "ser-loco", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "data": [str(Path(d).resolve()) for d in corpus_dirs], "labels_dropped": dropped,
              "groups": corpus_groups(corpora), "systems": list(systems), "fit_cap": fit_cap,
              "head_config": head_cfg.__dict__, "head_input_level_db": head_input_level_db if head_input_level_db is not None else input_level_db,
              "input_level_db": input_level_db, "representation_ids": {r.name: r.id for r in reps},
              "arousal_data": [str(Path(d).resolve()) for d in arousal_dirs], "n_arousal_clips": len(level_clips), "folds": {}}
    all_folds = {f["name"]: f for f in folds(corpora, within, fit_cap)}
    unknown = [f for f in only_folds or [] if f not in all_folds]
    if unknown:
        raise ConfigError(f"no fold named {', '.join(unknown)}; the folds are {', '.join(all_folds)}")
    if "compact" in systems:
        compact_cfg = compact_cfg or TrainConfig()
        report["compact_config"] = asdict(compact_cfg)
        no_dev = [n for n in only_folds or all_folds if not all_folds[n]["dev"]]
        if no_dev:  # said now, not after hours of other folds
            raise ConfigError(f"the compact system needs dev speakers to choose its epoch, and fold(s) {', '.join(no_dev)} have none: "
                              "each fold's training corpora need speaker ids (at least 3 speakers in a corpus); leave the "
                              "system out or run the other folds with --folds")
    levels = ClipFeatures(cache, [SpeechLevel()])  # the loudness anchor, one read per clip for every fold
    reuse = {}
    if earlier is not None:
        differ = same_settings(earlier, report)
        if differ:
            log(f"the earlier report is not reused: its {', '.join(differ)} {'differs' if len(differ) == 1 else 'differ'} "
                "from this run's")
        else:
            reuse = earlier.get("folds", {})
    wanted = set(only_folds or all_folds)
    for fold in all_folds.values():
        if fold["name"] in reuse:  # an earlier fold of other --folds is kept too: nothing finished is dropped
            log(f"fold {fold['name']}: taken from the earlier run (same settings)")
            report["folds"][fold["name"]] = reuse[fold["name"]]
            continue
        if fold["name"] not in wanted:
            continue
        log(f"fold {fold['name']}: fit {len(fold['fit'])} clips, dev {len(fold['dev'])}, score {len(fold['score'])}")
        entry = {"left_out": fold["left_out"], "n_fit": len(fold["fit"]), "n_dev": len(fold["dev"]), "n_score": len(fold["score"]),
                 "systems": {}}
        for system in systems:
            kind, names = _parse(system)
            started = time.time()
            scored, dims = fold["score"], None
            if kind == "head":
                probs, info, dims, outputs = run_head(head_feats, names, fold, head_cfg, log, level_clips)
                if outputs_dir is not None:
                    target = outputs_file(outputs_dir, fold["name"], system)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    np.savez_compressed(target, **outputs)
                    info["outputs"] = target.name
            elif kind == "compact":
                probs, info, scored, dims = run_compact(fold, compact_cfg, Path(compact_dir) / fold["name"] if compact_dir else None, log)
            else:
                probs, info = run_lr(feats, names, fold, use_utterance=kind in ("utt", "mfcc"))
            res = {"info": info, "scores": score_block(scored, probs, None if dims is None else dims[:, 1]),
                   "seconds": round(time.time() - started, 1)}
            entry["systems"][system] = res
            log(f"  {system:28s} " + "  ".join(f"{c} UAR {m['uar']:.3f}" + (f" (rare: {','.join(m['rare_classes'])})" if m["rare_classes"] else "")
                                              for c, m in res["scores"].items()) + f"  [{res['seconds']:.0f} s]")
        entry["loudness_arousal_auc"] = arousal_auc(fold["score"], [levels.utterance(c.path, ["speech-level"])[0] for c in fold["score"]])
        report["folds"][fold["name"]] = entry
        if on_fold is not None:
            on_fold(report)
    return report


SETTINGS = ("data", "systems", "fit_cap", "head_config", "head_input_level_db", "input_level_db", "representation_ids",
            "arousal_data", "compact_config")  # what a report's scores depend on, beside the code


def same_settings(earlier: dict, report: dict) -> list[str]:
    """The SETTINGS in which two LOCO reports differ (empty: the earlier one's folds can stand in this one)."""
    if earlier.get("kind") != "ser-loco":
        return ["kind"]
    return [k for k in SETTINGS if json.loads(json.dumps(earlier.get(k))) != json.loads(json.dumps(report.get(k)))]


def _parse(system: str) -> tuple[str, list[str]]:
    """'mfcc-lr' -> ('mfcc', ['mfcc']); 'lr:resemblyzer-utt' -> ('utt', ['resemblyzer']); 'lr:a+b' / 'head:a+b'."""
    if system == "mfcc-lr":
        return "mfcc", ["mfcc"]
    if system == "compact":
        return "compact", []
    kind, _, rest = system.partition(":")
    if kind not in ("lr", "head") or not rest:
        raise ConfigError(f"unknown system {system!r}: use mfcc-lr, lr:REP[+REP], lr:REP-utt, head:REP[+REP] or compact")
    if kind == "lr" and rest.endswith("-utt"):
        return "utt", rest[: -len("-utt")].split("+")
    return kind, rest.split("+")


def summary(report: dict) -> str:
    """The table: one row per system, UAR per left-out corpus, the LOCO mean, and the within split per corpus."""
    lines = []
    loco = [(f, e) for f, e in report["folds"].items() if f != "within"]
    cols = []
    for f, e in loco:
        for name in e["left_out"]:
            if name in next(iter(e["systems"].values()))["scores"]:
                cols.append((f, name))
    within = report["folds"].get("within")
    within_cols = sorted(next(iter(within["systems"].values()))["scores"]) if within else []
    head = f"{'system':28s} " + " ".join(f"{n[:14]:>14s}" for _, n in cols) + f" {'LOCO mean':>10s}"
    head += "".join(f" {('in:' + n)[:14]:>14s}" for n in within_cols)
    lines += ["UAR, 7 classes (chance 1/k of the classes present). Columns: left-out corpus; in:X = held-out speakers of X, trained with all corpora",
              head, "-" * len(head)]
    for system in report["systems"]:
        vals = [report["folds"][f]["systems"].get(system, {}).get("scores", {}).get(n, {}).get("uar") for f, n in cols]
        main = [v for (f, n), v in zip(cols, vals) if not n.endswith("_song_trimmed")]
        main = main if all(v is not None for v in main) else []  # a mean over some folds only would mislead
        row = f"{system:28s} " + " ".join(f"{v:14.3f}" if v is not None else f"{'-':>14s}" for v in vals)
        row += f" {np.mean(main):10.3f}" if main else f" {'-':>10s}"
        for n in within_cols:
            v = within["systems"].get(system, {}).get("scores", {}).get(n, {}).get("uar") if within else None
            row += f" {v:14.3f}" if v is not None else f" {'-':>14s}"
        lines.append(row)
    lines.append("")
    lines.append(f"Per-class recall on the left-out corpora (! = predicted for under {RARE:.0%} of its clips); "
                 "ECE of the probabilities as trained -> calibrated (the heads' prior shift and temperature T):")
    for f, e in report["folds"].items():
        for system, res in e["systems"].items():
            for name, m in res["scores"].items():
                rec = " ".join(f"{k[:4]} {v:.2f}{'!' if v < RARE else ''}" for k, v in m["per_class_recall"].items())
                before = res["info"].get("ece_uncalibrated", {}).get(name) if isinstance(res["info"], dict) else None
                ece = f"ECE {before:.3f} -> {m['ece']:.3f} (T={res['info']['temperature']:.2f})" if before is not None else f"ECE {m['ece']:.3f}"
                if "ece_floor" in m:  # reports written before the floor was measured have none
                    ece += f", floor {m['ece_floor']:.3f}"
                lines.append(f"  [{f}] {system:28s} {name:20s} {rec}   {ece}")
    lines += arousal_lines(report, cols, within_cols)
    lines += switch_lines(report)
    return "\n".join(lines)


def arousal_lines(report: dict, cols: list[tuple[str, str]], within_cols: list[str]) -> list[str]:
    """The arousal table: each system with an arousal output (heads, compact) and the recording's loudness, one
    AUC per left-out corpus (and per held-out-speaker corpus); nothing when no system has arousal."""
    def auc(fold: str, corpus: str, system: str | None) -> float | None:
        entry = report["folds"].get(fold, {})
        if system is None:
            return entry.get("loudness_arousal_auc", {}).get(corpus)
        return entry.get("systems", {}).get(system, {}).get("scores", {}).get(corpus, {}).get("arousal_auc")

    every = [*cols, *(("within", n) for n in within_cols)]
    systems = [s for s in report["systems"] if any(auc(f, n, s) is not None for f, n in every)]
    if not systems:
        return []
    high = ", ".join(HIGH_AROUSAL)
    lines = ["", f"Arousal on the left-out corpora: AUC that a clip of {high} gets a higher arousal than one of "
             "neutral or sad (0.5 = chance; - = a group missing). Loudness = the clip's speech level as recorded "
             "(the systems hear every clip at one level when a level is set):",
             f"{'system':28s} " + " ".join(f"{n[:14]:>14s}" for _, n in cols) + "".join(f" {('in:' + n)[:14]:>14s}" for n in within_cols)]
    for system in [*systems, None]:
        vals = [auc(f, n, system) for f, n in every]
        lines.append(f"{system or 'loudness as recorded':28s} " + " ".join(f"{v:14.3f}" if v is not None else f"{'-':>14s}" for v in vals))
    return lines


def merge_reports(reports: Sequence[dict]) -> dict:
    """One report from runs over different folds (e.g. a large corpus's fold run separately)."""
    merged = dict(reports[0])
    merged["folds"], merged["systems"] = {}, []
    for r in reports:
        for name, fold in r["folds"].items():
            if name in merged["folds"]:  # the same fold run for other systems: add them
                merged["folds"][name] = {**merged["folds"][name], "systems": {**merged["folds"][name]["systems"], **fold["systems"]}}
            else:
                merged["folds"][name] = fold
        merged["systems"] += [s for s in r["systems"] if s not in merged["systems"]]
        merged["representation_ids"] = {**r.get("representation_ids", {}), **merged.get("representation_ids", {})}
    return merged


# Issue 11's rule for the default backend: a new model replaces the compact one when its mean LOCO UAR is
# at least 8 points (0.08) above the compact model's and it beats the best frozen-representation + LR
# baseline on every left-out corpus.
SWITCH_MARGIN = 0.08


def is_lr_anchor(system: str) -> bool:
    """The baselines a new default must beat on every left-out corpus: `mfcc-lr` and every `lr:*`."""
    return system == "mfcc-lr" or system.startswith("lr:")


def default_switch(report: dict, candidate: str, incumbent: str = "compact", margin: float = SWITCH_MARGIN) -> tuple[bool, list[str]]:
    """Does `candidate` replace `incumbent` as the default, by the rule above, in this LOCO report?

    Returns (switch, reasons). When it switches, the reasons are the conditions met, with their numbers;
    when it does not, the conditions that failed. When the report cannot tell (the incumbent, the
    candidate, an LR baseline or a fold is missing) it does not switch and every reason starts with
    "cannot decide". Left-out corpora are those of the summary's LOCO mean (a song corpus, left out with
    its actors' speech corpus, is not one of them)."""
    systems = list(report.get("systems", []))
    anchors = [s for s in systems if is_lr_anchor(s)]
    columns, undecided = _left_out_corpora(report)
    if not columns and not undecided:
        undecided.append("cannot decide: the report has no leave-one-corpus-out fold (it needs corpora of at least two speaker groups)")
    for s in (candidate, incumbent):
        if s not in systems:
            undecided.append(f"cannot decide: {s} is not in the report; run it in the same LOCO run (--systems ... {s}) or merge its report")
    if not anchors:
        undecided.append("cannot decide: no frozen-representation + LR baseline (mfcc-lr, lr:REP) is in the report")
    uar = {s: {c: _uar(report, f, c, s) for f, c in columns} for s in (candidate, incumbent, *anchors) if s in systems}
    for s, per_corpus in uar.items():
        gaps = [c for c, v in per_corpus.items() if v is None]
        if gaps:
            undecided.append(f"cannot decide: {s} has no UAR with {', '.join(gaps)} left out")
    if undecided:
        return False, undecided
    met, failed = [], []
    mean_new, mean_old = float(np.mean(list(uar[candidate].values()))), float(np.mean(list(uar[incumbent].values())))
    gain = mean_new - mean_old
    line = (f"mean LOCO UAR {mean_new:.3f} vs {incumbent} {mean_old:.3f}: {100 * gain:+.1f} points "
            f"(needs at least +{100 * margin:g})")
    (met if gain >= margin - 1e-9 else failed).append(line)
    for fold, corpus in columns:
        best = max(anchors, key=lambda a: uar[a][corpus])
        new, old = uar[candidate][corpus], uar[best][corpus]
        line = f"{corpus} left out: {new:.3f} vs the best LR baseline {old:.3f} ({best})" + ("" if new > old else ": not above it")
        se = [uar_standard_error(_scores(report, fold, corpus, s).get("confusion")) for s in (candidate, best)]
        if None not in se:  # how far the clips alone move such a difference (the seeds of the heads move it more)
            half = 1.96 * float(np.hypot(*se))
            line += (f"; difference {new - old:+.3f} ± {half:.3f} (95 %, clip sampling)"
                     + (", within it" if abs(new - old) < half else ""))
        (met if new > old else failed).append(line)
    return (not failed), (failed or met)


def uar_standard_error(confusion: Sequence[Sequence[int]] | None) -> float | None:
    """The standard error of the UAR that clip sampling alone gives: each present class's recall is a binomial
    proportion over its n clips (variance r(1 - r) / n), the UAR their mean. None without a confusion matrix."""
    if confusion is None:
        return None
    cm = np.asarray(confusion, dtype=float)
    n = cm.sum(axis=1)
    present = n > 0
    if not present.any():
        return None
    r = np.diag(cm)[present] / n[present]
    return float(np.sqrt(np.sum(r * (1 - r) / n[present])) / present.sum())


def switch_lines(report: dict, incumbent: str = "compact") -> list[str]:
    """The rule's verdict for every head:* system, when the incumbent was run; else nothing."""
    heads = [s for s in report.get("systems", []) if s.startswith("head:")]
    if incumbent not in report.get("systems", []) or not heads:
        return []
    lines = ["", f"Default switch: a head replaces {incumbent} as the default when its mean LOCO UAR is at least "
                 f"{100 * SWITCH_MARGIN:g} points above {incumbent}'s and it beats the best LR baseline (mfcc-lr, lr:*) "
                 "on every left-out corpus:"]
    for head in heads:
        switch, reasons = default_switch(report, head, incumbent)
        verdict = "becomes the default" if switch else "cannot decide" if reasons[0].startswith("cannot decide") else f"{incumbent} stays"
        lines.append(f"  {head}: {verdict}")
        lines += [f"    - {r.removeprefix('cannot decide: ')}" for r in reasons]
    return lines


def _left_out_corpora(report: dict) -> tuple[list[tuple[str, str]], list[str]]:
    """[(fold, corpus)] of the left-out corpora that count, and a 'cannot decide' line per missing fold."""
    groups = report.get("groups")
    if groups is None:  # an older or hand-made report: the folds it has
        expected = {f: e.get("left_out", []) for f, e in report.get("folds", {}).items() if f != "within"}
    else:
        expected = {"+".join(g): g for g in groups} if len(groups) > 1 else {}
    columns, missing = [], []
    for fold, left_out in expected.items():
        if fold not in report.get("folds", {}):
            missing.append(f"cannot decide: fold {fold} is not in the report; run it (--folds {fold}) and merge the reports")
            continue
        columns += [(fold, c) for c in left_out if not c.endswith("_song_trimmed")]  # as in summary's LOCO mean
    return columns, missing


def _uar(report: dict, fold: str, corpus: str, system: str) -> float | None:
    return _scores(report, fold, corpus, system).get("uar")


def _scores(report: dict, fold: str, corpus: str, system: str) -> dict:
    return report["folds"].get(fold, {}).get("systems", {}).get(system, {}).get("scores", {}).get(corpus, {})
