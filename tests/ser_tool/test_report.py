import json

import pytest
from pydantic import ValidationError

from ser_tool import EMOTIONS, AffectReport, Dimensions, EmotionProbabilities, report_json_schema


def _walk(schema: dict, defs: dict, path: str = "AffectReport", seen=None):
    """Yield (path, property schema) for every property reachable from `schema`."""
    seen = seen if seen is not None else set()
    for name, prop in schema.get("properties", {}).items():
        yield f"{path}.{name}", prop
        for ref in _refs(prop):
            key = ref.rsplit("/", 1)[-1]
            if key not in seen:
                seen.add(key)
                yield from _walk(defs[key], defs, key, seen)


def _refs(prop: dict):
    if "$ref" in prop:
        yield prop["$ref"]
    for key in ("anyOf", "allOf", "oneOf"):
        for sub in prop.get(key, []):
            yield from _refs(sub)
    if "items" in prop:
        yield from _refs(prop["items"])


def test_every_field_has_a_description():
    schema = report_json_schema()
    props = list(_walk(schema, schema["$defs"]))
    assert len(props) > 20
    missing = [path for path, prop in props if not prop.get("description")]
    assert missing == []


def test_emotions_in_meralion_index_order():
    schema = report_json_schema()
    assert tuple(schema["$defs"]["EmotionProbabilities"]["properties"]) == EMOTIONS
    assert EMOTIONS == ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
    assert tuple(schema["$defs"]["Dimensions"]["properties"]) == ("valence", "arousal", "dominance")


def test_dimension_scales_are_stated():
    props = report_json_schema()["$defs"]["Dimensions"]["properties"]
    assert "0 = very negative" in props["valence"]["description"] and "1 = very positive" in props["valence"]["description"]
    assert "calm" in props["arousal"]["description"] and "active" in props["arousal"]["description"]
    assert "weak" in props["dominance"]["description"] and "strong" in props["dominance"]["description"]


def test_probabilities_must_sum_to_one():
    with pytest.raises(ValidationError, match="sum to 1"):
        EmotionProbabilities(neutral=0.5, happy=0.1, sad=0.1, angry=0.1, fearful=0.1, disgusted=0.0, surprised=0.0)
    p = EmotionProbabilities.from_sequence([2, 1, 1, 0, 0, 0, 0])
    assert p.as_tuple() == pytest.approx((0.5, 0.25, 0.25, 0, 0, 0, 0))
    with pytest.raises(ValueError, match="expected 7"):
        EmotionProbabilities.from_sequence([1, 0])


def test_dimensions_are_bounded():
    with pytest.raises(ValidationError):
        Dimensions(valence=1.2, arousal=0.5, dominance=0.5)
    assert Dimensions.from_sequence([1.3, -0.1, 0.5]).valence == 1.0


def test_report_round_trips_through_json(fake_backend, sample_path):
    from ser_tool import Analyzer

    report = Analyzer(fake_backend).analyze(sample_path)
    again = AffectReport.model_validate_json(report.model_dump_json())
    assert again == report
    assert json.loads(report.model_dump_json())["overall"]["probabilities"].keys() == set(EMOTIONS)
