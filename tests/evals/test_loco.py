"""Leave-one-corpus-out: the `compact` system (the shipped architecture trained per fold) and issue 11's
default-switch rule. The representation systems' LOCO tests are in tests/ser_tool/test_voice_head.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ser_tool.data import read_corpus
from ser_tool.errors import ConfigError
from ser_tool.labels import EMOTIONS
from ser_tool.testing import make_toy_corpus
from ser_tool.train.loop import TrainConfig

from evals.classify.loco import arousal_auc, default_switch, folds, run_compact, run_loco, summary


def _corpora(root, n_speakers):
    return [make_toy_corpus(root / name, n_speakers, corpus=name) for name in ("a", "b")]


@pytest.mark.slow
def test_compact_system_trains_on_the_fold_and_scores_every_left_out_clip(tmp_path, one_thread):
    corpora = {read_corpus(d).name: read_corpus(d).clips for d in _corpora(tmp_path, 8)}
    fold = {f["name"]: f for f in folds(corpora, within=False)}["b"]
    lines = []
    probs, info, scored, dims = run_compact(fold, TrainConfig(epochs=1, batch_size=8), tmp_path / "model", log=lines.append)

    assert scored == fold["score"] and len(scored) == 24  # every labelled clip of b (8 speakers x angry, sad, calm)
    assert probs.shape == (24, len(EMOTIONS)) and np.all(np.isfinite(probs)) and np.allclose(probs.sum(axis=1), 1)
    assert info["epochs"] == 1 and info["best_epoch"] == 1 and len(info["dev_mean_uar_by_epoch"]) == 1
    assert info["n_train"] == len(fold["fit"]) and info["undecodable"] == []
    assert any(line.startswith("  compact: epoch  1") for line in lines)  # a progress line per epoch
    trained = json.loads((tmp_path / "model" / "training.json").read_text())
    assert set(trained["clips"]["train"]) == {"a"} and set(trained["clips"]["dev"]) == {"a"}  # b never seen
    # the rows are the kept model's, run the way `ser-eval ser` runs a model
    from ser_tool.backends import load_backend

    from evals.classify.benchmark import predict_clips

    again = predict_clips(load_backend("embedded", model=str(tmp_path / "model")), scored[:5])
    assert np.allclose(again.probabilities, probs[:5], atol=1e-6)
    assert dims.shape == (24, 3) and np.allclose(again.dimensions, dims[:5], atol=1e-6)  # its arousal, for the AUC


@pytest.mark.slow
def test_ser_eval_loco_runs_compact_beside_the_mfcc_baseline(tmp_path, capsys, one_thread):
    from evals.cli import main

    corpora = [str(d) for d in _corpora(tmp_path, 12)]  # 11 fitting speakers x 3 clips: one batch of 32
    out = tmp_path / "out"
    rc = main(["ser", "--loco", *corpora, "--systems", "mfcc-lr", "compact", "--compact-epochs", "1", "--folds", "b",
               "--loco-cache", str(tmp_path / "cache"), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["compact_config"]["epochs"] == 1 and report["systems"] == ["mfcc-lr", "compact"]
    block = report["folds"]["b"]["systems"]["compact"]
    assert block["scores"]["b"]["n"] == 36 and set(block["scores"]["b"]["per_class_recall"]) == {"neutral", "sad", "angry"}
    assert block["info"]["model_dir"] == str(out / "compact" / "b") and (out / "compact" / "b" / "model.safetensors").is_file()
    assert "compact" in (out / "summary.txt").read_text()
    assert "compact: epoch  1" in capsys.readouterr().err

    # too few clips for one batch: one line saying what to do, no traceback
    small = [str(d) for d in _corpora(tmp_path / "small", 8)]
    assert main(["ser", "--loco", *small, "--systems", "compact", "--folds", "b", "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "fewer than one batch of 32" in err and "Traceback" not in err


def test_compact_without_dev_speakers_is_refused_before_any_training(tmp_path):
    corpora = [make_toy_corpus(tmp_path / n, 2, corpus=n) for n in ("a", "b")]  # 2 speakers: no dev split
    with pytest.raises(ConfigError, match="needs dev speakers") as refused:
        run_loco(corpora, systems=["compact"], within=False, log=lambda s: pytest.fail(f"started a fold: {s}"))
    assert "a, b" in str(refused.value)


# --- the default-switch rule, on hand-built reports ---------------------------------------------------------

def _report(uars: dict[str, dict[str, float]], groups: list[list[str]] | None = None) -> dict:
    """A LOCO report as run_loco writes it: uars[system][left-out corpus] = UAR, one fold per group."""
    groups = groups or [[c] for c in next(iter(uars.values()))]
    report = {"kind": "ser-loco", "systems": list(uars), "groups": groups, "folds": {}}
    for group in groups:
        systems = {s: {"info": {}, "scores": {c: {"uar": v[c], "per_class_recall": {"angry": v[c]}, "ece": 0.1}
                                              for c in group if c in v}}
                   for s, v in uars.items() if any(c in v for c in group)}
        report["folds"]["+".join(group)] = {"left_out": group, "systems": systems}
    return report


PASSING = {
    "mfcc-lr": {"x": 0.25, "y": 0.25, "z": 0.25},
    "lr:w": {"x": 0.40, "y": 0.30, "z": 0.34},
    "compact": {"x": 0.30, "y": 0.30, "z": 0.30},
    "head:r": {"x": 0.45, "y": 0.40, "z": 0.35},  # mean 0.40: +10 points; above the best LR on each corpus
}


def test_switch_passes_when_both_conditions_hold():
    switch, reasons = default_switch(_report(PASSING), "head:r")
    assert switch is True
    assert reasons[0] == "mean LOCO UAR 0.400 vs compact 0.300: +10.0 points (needs at least +8)"
    assert "z left out: 0.350 vs the best LR baseline 0.340 (lr:w)" in reasons and len(reasons) == 4


def test_switch_fails_on_the_margin_and_holds_at_exactly_eight_points():
    seven = {**PASSING, "head:r": {"x": 0.41, "y": 0.37, "z": 0.35}}  # mean 0.3767: +7.7 points, still above each LR
    switch, reasons = default_switch(_report(seven), "head:r")
    assert switch is False and reasons == ["mean LOCO UAR 0.377 vs compact 0.300: +7.7 points (needs at least +8)"]
    # exactly +8 points, though 0.35 - 0.27 is 0.0799999999999999 in floating point
    eight = {"lr:w": dict.fromkeys("xyz", 0.30), "compact": dict.fromkeys("xyz", 0.27), "head:r": dict.fromkeys("xyz", 0.35)}
    switch, reasons = default_switch(_report(eight), "head:r")
    assert switch is True and reasons[0] == "mean LOCO UAR 0.350 vs compact 0.270: +8.0 points (needs at least +8)"


def test_switch_fails_when_an_lr_anchor_wins_on_one_corpus():
    lost = {**PASSING, "lr:w": {"x": 0.40, "y": 0.30, "z": 0.36}}  # above the head's 0.35 with z left out
    switch, reasons = default_switch(_report(lost), "head:r")
    assert switch is False and reasons == ["z left out: 0.350 vs the best LR baseline 0.360 (lr:w): not above it"]
    tie = {**PASSING, "mfcc-lr": {"x": 0.45, "y": 0.25, "z": 0.25}}  # a tie is not a win
    assert default_switch(_report(tie), "head:r") == (False, ["x left out: 0.450 vs the best LR baseline 0.450 (mfcc-lr): not above it"])


def test_switch_cannot_decide_without_the_compact_model_a_fold_or_an_anchor():
    no_compact = {k: v for k, v in PASSING.items() if k != "compact"}
    switch, reasons = default_switch(_report(no_compact), "head:r")
    assert switch is False and reasons == ["cannot decide: compact is not in the report; run it in the same LOCO run "
                                           "(--systems ... compact) or merge its report"]
    gap = {**PASSING, "compact": {"x": 0.30, "y": 0.30}}  # compact not run with z left out
    assert default_switch(_report(gap, [["x"], ["y"], ["z"]]), "head:r") == (False, ["cannot decide: compact has no UAR with z left out"])
    missing_fold = _report(PASSING, [["x"], ["y"], ["z"]])
    del missing_fold["folds"]["z"]
    switch, reasons = default_switch(missing_fold, "head:r")
    assert switch is False and reasons == ["cannot decide: fold z is not in the report; run it (--folds z) and merge the reports"]
    no_anchor = {k: v for k, v in PASSING.items() if k in ("compact", "head:r")}
    assert default_switch(_report(no_anchor), "head:r")[1] == [
        "cannot decide: no frozen-representation + LR baseline (mfcc-lr, lr:REP) is in the report"]


def test_switch_leaves_a_song_corpus_out_as_the_loco_mean_does():
    uars = {s: {**v, "x_song_trimmed": 0.9 if s == "lr:w" else 0.1} for s, v in PASSING.items()}
    switch, reasons = default_switch(_report(uars, [["x", "x_song_trimmed"], ["y"], ["z"]]), "head:r")
    assert switch is True and not any("song" in r for r in reasons)


def test_summary_prints_the_verdict_for_every_head_when_compact_ran():
    two_heads = {**PASSING, "head:q": {"x": 0.31, "y": 0.31, "z": 0.31}}
    text = summary(_report(two_heads))
    assert "Default switch:" in text
    assert "  head:r: becomes the default" in text and "  head:q: compact stays" in text
    assert "    - mean LOCO UAR 0.310 vs compact 0.300: +1.0 points (needs at least +8)" in text
    assert "Default switch:" not in summary(_report({k: v for k, v in PASSING.items() if k != "compact"}))


def test_arousal_auc_ranks_high_arousal_categories_above_neutral_and_sad():
    from pathlib import Path

    from ser_tool.data import Clip

    def clips(corpus, labels):
        return [Clip(Path(f"{corpus}{i}.wav"), corpus, label) for i, label in enumerate(labels)]

    x = clips("x", ["neutral", "sad", "angry", "happy", "disgusted"])
    assert arousal_auc(x, [0.1, 0.2, 0.9, 0.8, 0.7]) == {"x": 1.0}
    assert arousal_auc(x, [0.9, 0.8, 0.1, 0.2, 0.3]) == {"x": 0.0}
    assert arousal_auc(x, [0.5, 0.2, 0.4, 0.9, 0.1]) == {"x": pytest.approx(3 / 6)}  # 3 of the 6 high-low pairs in order
    assert arousal_auc(x, [0.1, np.nan, 0.9, 0.8, np.nan]) == {"x": 1.0}  # no speech (NaN) is left out
    both = x + clips("y", ["angry", "fearful"])  # y has no low-arousal clip: no AUC for it
    assert arousal_auc(both, [0.1, 0.2, 0.9, 0.8, 0.7, 0.5, 0.5]) == {"x": 1.0, "y": None}


# --- an interrupted run keeps its finished folds, and the same command continues from them -----------------

def test_an_interrupted_loco_run_keeps_its_folds_and_a_rerun_continues(tmp_path, capsys, monkeypatch):
    import evals.classify.loco as loco
    from evals.cli import main

    corpora = [str(d) for d in _corpora(tmp_path, 6)]
    out = tmp_path / "out"
    cmd = ["ser", "--loco", *corpora, "--systems", "mfcc-lr", "--loco-cache", str(tmp_path / "cache"), "--out", str(out)]
    real_run_lr, calls = loco.run_lr, []

    def run_lr(feats, names, fold, **kw):
        calls.append(fold["name"])
        if fold["name"] == "b" and stop_at_b:
            raise KeyboardInterrupt  # Ctrl-C in the second fold
        return real_run_lr(feats, names, fold, **kw)

    monkeypatch.setattr(loco, "run_lr", run_lr)
    stop_at_b = True
    assert main(cmd) == 130
    err = capsys.readouterr().err
    assert "the finished fold(s) (a) are in" in err and "rerun the same command to continue" in err, err
    kept = json.loads((out / "report.json").read_text())
    assert kept["complete"] is False and list(kept["folds"]) == ["a"]

    stop_at_b, calls[:] = False, []
    assert main(cmd) == 0
    err = capsys.readouterr().err
    assert "fold a: taken from the earlier run" in err and calls == ["b", "within"]  # fold a is not run again
    done = json.loads((out / "report.json").read_text())
    assert done["complete"] is True and list(done["folds"]) == ["a", "b", "within"]
    assert done["folds"]["a"] == kept["folds"]["a"]

    # a finished report is not reused: the same command runs every fold again
    calls[:] = []
    assert main(cmd) == 0 and calls == ["a", "b", "within"]
    capsys.readouterr()
    # an unfinished report of other settings is not reused either, and the log says which setting differs
    kept["fit_cap"] = 5
    (out / "report.json").write_text(json.dumps(kept))
    calls[:] = []
    assert main(cmd) == 0 and calls == ["a", "b", "within"]
    assert "not reused: its fit_cap differs from this run's" in capsys.readouterr().err
    # continued with other --folds: the earlier fold stays in the report beside the ones asked for
    kept["fit_cap"] = 2000
    (out / "report.json").write_text(json.dumps(kept))
    calls[:] = []
    assert main([*cmd, "--folds", "within"]) == 0 and calls == ["within"]
    assert list(json.loads((out / "report.json").read_text())["folds"]) == ["a", "within"]


def test_switch_lines_say_how_far_clip_sampling_moves_each_difference():
    from evals.classify.loco import uar_standard_error

    # recalls 0.8 (n 10) and 0.5 (n 10): var = (0.16 / 10 + 0.25 / 10) / 4
    assert uar_standard_error([[8, 2], [5, 5]]) == pytest.approx(np.sqrt(0.041) / 2)
    assert uar_standard_error([[8, 2, 0], [5, 5, 0], [0, 0, 0]]) == pytest.approx(np.sqrt(0.041) / 2)  # absent class
    assert uar_standard_error(None) is None
    report = _report(PASSING)
    for system, right in (("head:r", 35), ("lr:w", 34)):  # z left out: 100 clips of each of 2 classes
        report["folds"]["z"]["systems"][system]["scores"]["z"]["confusion"] = [[right, 100 - right], [100 - right, right]]
    switch, reasons = default_switch(report, "head:r")
    se = np.hypot(np.sqrt(2 * 0.35 * 0.65 / 100) / 2, np.sqrt(2 * 0.34 * 0.66 / 100) / 2)
    assert switch is True  # the rule itself is unchanged
    assert f"z left out: 0.350 vs the best LR baseline 0.340 (lr:w); difference +0.010 ± {1.96 * se:.3f} (95 %, clip sampling), within it" in reasons
