"""evals.classify.rules: other decision rules and calibrations of a LOCO run, from its saved per-clip outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import softmax

from ser_tool.errors import ConfigError
from ser_tool.train.calibration import fit_temperature

from ser_tool.labels import EMOTIONS

from evals.classify.rules import nested_temperature, probabilities, read_outputs, rule_table, run


def _outputs(rng, n=600, sharpen=1.0, shift=None, classes=(0, 1, 2), corpus="x"):
    """Clips whose labels are drawn from softmax(true logits); the 'model' reports the true logits times `sharpen`
    (sharpen > 1: over-confident), as two identical heads with one prior shift, on scored and dev clips alike."""
    def draw(m):
        true = np.full((m, 7), -30.0)
        true[:, list(classes)] = rng.normal(size=(m, len(classes))) * 2.0
        labels = np.array([rng.choice(7, p=softmax(t)) for t in true])
        return np.stack([true * sharpen] * 2), labels

    z, y = draw(n)
    zd, yd = draw(n // 2)
    s = np.zeros(7) if shift is None else np.asarray(shift, dtype=float)
    return {"logits": z - s, "dev_logits": zd - s, "label": y, "dev_label": yd, "corpus": np.array([corpus] * n),
            "dev_corpus": np.array([corpus] * (n // 2)), "prior_shift": np.stack([s, s]), "temperature": np.ones(2)}


def test_alpha_applies_that_much_of_the_prior_shift_and_refits_the_temperature():
    rng = np.random.default_rng(0)
    shift = np.array([1.0, -1.0, 0.5, 0, 0, 0, 0])  # the trained logits are the truth minus the shift
    o = _outputs(rng, shift=shift, sharpen=2.0)
    t1 = fit_temperature(o["dev_logits"][0] + shift, o["dev_label"])
    assert t1 == pytest.approx(2.0, rel=0.25)  # the dev clips reveal the over-confidence
    np.testing.assert_allclose(probabilities(o, 1.0), softmax((o["logits"][0] + shift) / t1, axis=1), atol=1e-9)
    t0 = fit_temperature(o["dev_logits"][0], o["dev_label"])
    np.testing.assert_allclose(probabilities(o, 0.0), softmax(o["logits"][0] / t0, axis=1), atol=1e-9)
    table = rule_table({"f": o}, (0.0, 1.0))
    assert table["f"]["x"][1.0]["nll"] < table["f"]["x"][0.0]["nll"]  # the full shift restores the truth here
    assert table["f"]["x"][1.0]["ece"] < 0.06


def test_a_class_never_predicted_is_flagged_and_within_gets_its_pooled_row():
    rng = np.random.default_rng(1)
    o = _outputs(rng)
    o["logits"][:, :, 2] = -50.0  # class 2 (sad) is never the top class
    table = rule_table({"within": o}, (1.0,))
    assert table["within"]["x"][1.0]["rare_classes"] == ["sad"] and set(table["within"]) == {"x", "all"}


def test_a_temperature_fitted_on_the_other_left_out_corpora_is_applied_to_this_one():
    rng = np.random.default_rng(2)
    folds = {name: _outputs(rng, sharpen=1.0, corpus=name) for name in ("a", "b", "c")}
    for o in folds.values():  # dev clips calibrated, left-out clips three times over-confident: unfamiliar speech
        o["logits"] = o["logits"] * 3.0
    nested = nested_temperature({**folds, "within": folds["a"]}, 1.0)
    assert set(nested) == {"a", "b", "c"} and nested["a"]["fitted_on"] == ["b", "c"]
    for r in nested.values():
        assert r["temperature"] == pytest.approx(3.0, rel=0.25)
        assert r["after"]["ece"] < r["before"]["ece"] / 2 and r["after"]["nll"] < r["before"]["nll"]
    with pytest.raises(ConfigError, match="at least two left-out folds"):
        nested_temperature({"a": folds["a"], "within": folds["b"]}, 1.0)


def test_a_run_without_outputs_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="no readable report.json"):
        read_outputs(tmp_path)
    (tmp_path / "report.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ConfigError, match="not the report of a `ser-eval ser --loco` run"):
        read_outputs(tmp_path)
    (tmp_path / "report.json").write_text(json.dumps({"kind": "ser-loco", "folds": {"a": {"systems": {"lr:prosody": {"info": {}}}}}}))
    with pytest.raises(ConfigError, match="kept no per-clip outputs"):
        run(tmp_path)
    from evals.cli import main

    assert main(["loco-rules", str(tmp_path)]) == 2


def test_confidence_bands_say_how_often_each_word_was_right():
    from evals.classify.rules import confidence_bands

    from ser_tool.aggregate import confidence_from
    from ser_tool.describe import confidence_word
    from ser_tool.report import Affect, EmotionProbabilities

    n = 40
    logits = np.zeros((n, 7))
    logits[:20, 0] = 8.0  # 20 sure neutral readings (high), half of them wrong
    logits[20:, 1] = 0.3  # 20 nearly flat readings (low), all right
    labels = np.array([0] * 10 + [3] * 10 + [1] * 20)
    o = _outputs(np.random.default_rng(3), classes=range(7))  # dev clips of a calibrated model: temperatures near 1
    o.update(logits=np.stack([logits, logits]), label=labels, corpus=np.array(["x"] * n))
    bands = confidence_bands({"f": o})["f"]["x"]
    assert bands["high"]["share"] == 0.5 and bands["high"]["right"] == 0.5
    assert bands["low"]["share"] == 0.5 and bands["low"]["right"] == 1.0
    assert bands["moderate"] == {"share": 0.0, "right": None, "mean_top": None}
    # the same words the reports give: each clip's band is confidence_word of its reading
    p = probabilities(o, 1.0)
    words = [confidence_word(Affect(emotion="neutral", confidence=confidence_from(row, 7),
                                    probabilities=EmotionProbabilities(**dict(zip(EMOTIONS, row.tolist())))))
             for row in p]
    assert words.count("high") == 20 and words.count("low") == 20


def test_a_damaged_outputs_file_is_named(tmp_path):
    report = {"kind": "ser-loco", "folds": {"a": {"systems": {"head:x": {"info": {"outputs": "a__head_x.npz"}}}}}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    with pytest.raises(ConfigError, match=r"lacks a__head_x\.npz"):
        read_outputs(tmp_path)
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "a__head_x.npz").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ConfigError, match=r"a__head_x\.npz cannot be read .*run that LOCO run again"):
        read_outputs(tmp_path)
    np.savez(tmp_path / "outputs" / "a__head_x.npz", logits=np.zeros((1, 2, 7)))  # another file's keys
    with pytest.raises(ConfigError, match="cannot be read"):
        read_outputs(tmp_path)
