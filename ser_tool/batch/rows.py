"""One output row per recording, built from its AffectReport (or from the error that stopped it).

Both engines call `analyze_row` in their workers, so the local and the Ray engine write the same rows.
`ROW_FIELDS` is the column contract (Parquet and JSONL alike); with speaker attribution (`--speakers`) the
`SPEAKER_FIELDS` follow them and timeline segments carry `speaker`; manifest columns are appended as strings.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from ser_tool.batch.inputs import Recording
from ser_tool.errors import ConfigError, ModelNotAvailableError, SERError
from ser_tool.labels import DIMENSIONS, EMOTIONS
from ser_tool.report import Affect, AffectReport

__all__ = ["FATAL_ERRORS", "crash_row", "ROW_FIELDS", "PROB_COLUMNS", "KEY_COLUMNS", "SPEAKER_FIELDS", "TIMING_COLUMNS",
           "analyze_row", "arrow_schema", "row_fields", "rows_to_table"]

PROB_COLUMNS = tuple(f"p_{e}" for e in EMOTIONS)
KEY_COLUMNS = ("path", "size_bytes", "mtime_ns")
# Columns that differ between two runs over the same recordings (when and how fast, not what).
TIMING_COLUMNS = ("seconds", "finished_at")
# Errors that no other recording would escape: the job stops instead of writing them into every row.
FATAL_ERRORS = (ModelNotAvailableError, ConfigError)

# name -> (arrow type name, description). Types: see arrow_schema().
ROW_FIELDS: dict[str, tuple[str, str]] = {
    "path": ("string", "Absolute path of the recording (with size_bytes and mtime_ns: what a rerun skips)."),
    "source": ("string", "The recording as the input named it: argument, manifest or list entry, or folder + file."),
    "size_bytes": ("int64", "File size when the job listed it; null when the file could not be read."),
    "mtime_ns": ("int64", "File modification time (ns since the epoch) when the job listed it; null when unreadable."),
    "duration": ("float64", "Length of the recording, seconds; null on error."),
    "speech_duration": ("float64", "Seconds in which speech was detected; null on error."),
    "emotion": ("string", "Overall expressed emotion; null on error."),
    "confidence": ("float64", "How clearly the overall emotion stands out, 0..1; null on error."),
    **{f"p_{e}": ("float64", f"Overall probability of {e}; null on error.") for e in EMOTIONS},
    **{d: ("float64", f"Overall {d}, 0..1; null on error or when the model has no dimensional head.") for d in DIMENSIONS},
    "unmapped_probability": ("float64", "Share of the model's probability on labels outside the 7 emotions; null when none."),
    "backend": ("string", "Model family ('voice', 'embedded', 'meralion', 'hf')."),
    "model_id": ("string", "Identifier or path of the model."),
    "timeline": ("timeline", "The recording's segments in time order: start, end, speech, and for speech the "
                             "emotion, confidence, p_* and valence/arousal/dominance; null on error."),
    "description": ("string", "The report's plain-English summary; null on error."),
    "warnings": ("list<string>", "The report's reliability notes; null on error."),
    "error": ("string", "Why this recording has no result; null when it was analysed."),
    "error_type": ("string", "The error's class (e.g. AudioDecodeError, NoSpeechError); null when analysed."),
    "seconds": ("float64", "Wall time the worker spent on this recording, decoding included."),
    "finished_at": ("string", "When the worker finished it, ISO 8601 UTC."),
}
# Appended after ROW_FIELDS only when the job attributes speech to speakers (then timeline segments also
# carry `speaker`); a job without speakers writes exactly ROW_FIELDS.
SPEAKER_FIELDS: dict[str, tuple[str, str]] = {
    "speaker_count": ("int64", "How many speakers the recording was attributed to; null on error."),
    "speakers": ("speakers", "Per speaker, in order of first speech: speaker (1, 2, ... as on the timeline segments), "
                             "first_speech, speaking_time (seconds), share (of all speech, 0..1), turns, the speaker's "
                             "overall emotion, confidence, p_* and valence/arousal/dominance, and change (how the "
                             "emotion moves, in words; null when it stays the same); null on error."),
}


def row_fields(speakers: bool = False) -> dict[str, tuple[str, str]]:
    """The columns of a job's rows, in order (before any manifest columns)."""
    return {**ROW_FIELDS, **SPEAKER_FIELDS} if speakers else dict(ROW_FIELDS)


def _affect_types():
    import pyarrow as pa

    return [("emotion", pa.string()), ("confidence", pa.float64()), *[(c, pa.float64()) for c in PROB_COLUMNS],
            *[(d, pa.float64()) for d in DIMENSIONS]]


def _segment_type(speakers: bool = False):
    import pyarrow as pa

    return pa.struct([("start", pa.float64()), ("end", pa.float64()), ("speech", pa.bool_()), *_affect_types(),
                      *([("speaker", pa.int64())] if speakers else [])])


def _speaker_type():
    import pyarrow as pa

    return pa.struct([("speaker", pa.int64()), ("first_speech", pa.float64()), ("speaking_time", pa.float64()),
                      ("share", pa.float64()), ("turns", pa.int64()), *_affect_types(), ("change", pa.string())])


def arrow_schema(extra_columns=(), speakers: bool = False):
    """The Arrow schema of the rows (with the speaker columns when `speakers`), manifest columns (strings) appended."""
    import pyarrow as pa

    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "list<string>": pa.list_(pa.string()),
             "timeline": pa.list_(_segment_type(speakers)), "speakers": pa.list_(_speaker_type())}
    fields = [pa.field(name, types[kind], metadata={"description": text})
              for name, (kind, text) in row_fields(speakers).items()]
    fields += [pa.field(name, pa.string(), metadata={"description": "Carried through from the manifest."})
               for name in extra_columns]
    return pa.schema(fields)


def has_speakers(rows: list[dict[str, Any]]) -> bool:
    """Whether any of these rows comes from a job with speaker attribution (it has the speaker columns)."""
    return any("speakers" in row for row in rows)


def rows_to_table(rows: list[dict[str, Any]], extra_columns=(), speakers: bool | None = None):
    """Rows as one Arrow table; `speakers` None: with the speaker columns when any row has them."""
    import pyarrow as pa

    speakers = has_speakers(rows) if speakers is None else speakers
    return pa.Table.from_pylist(rows, schema=arrow_schema(extra_columns, speakers))


def _affect_columns(a: Affect | None) -> dict[str, Any]:
    if a is None:
        return {"emotion": None, "confidence": None, **dict.fromkeys(PROB_COLUMNS), **dict.fromkeys(DIMENSIONS)}
    dims = a.dimensions
    return {
        "emotion": a.emotion,
        "confidence": a.confidence,
        **dict(zip(PROB_COLUMNS, a.probabilities.as_tuple())),
        **{d: None if dims is None else getattr(dims, d) for d in DIMENSIONS},
    }


def report_columns(report: AffectReport, speakers: bool = False) -> dict[str, Any]:
    """The result columns of a row from one report (with the speaker columns when `speakers`)."""
    o = report.overall
    columns = {
        "duration": report.duration,
        "speech_duration": report.speech_duration,
        **_affect_columns(o),
        "unmapped_probability": o.unmapped_probability,
        "backend": report.backend,
        "model_id": report.model_id,
        "timeline": [{"start": s.start, "end": s.end, "speech": s.speech, **_affect_columns(s.affect),
                      **({"speaker": s.speaker} if speakers else {})}
                     for s in (report.timeline or [])],
        "description": report.description,
        "warnings": list(report.warnings),
        "error": None,
        "error_type": None,
    }
    if speakers:
        people = report.speakers or []
        columns["speaker_count"] = len(people)
        columns["speakers"] = [{"speaker": p.speaker, "first_speech": p.first_speech, "speaking_time": p.speaking_time,
                                "share": p.share, "turns": p.turns, **_affect_columns(p.overall), "change": p.change}
                               for p in people]
    return columns


def _error_columns(analyzer, e: BaseException, message: str, speakers: bool = False) -> dict[str, Any]:
    backend = analyzer.backend
    return {
        "duration": None, "speech_duration": None, **_affect_columns(None), "unmapped_probability": None,
        "backend": backend.name, "model_id": backend.model_id, "timeline": None, "description": None, "warnings": None,
        "error": message, "error_type": type(e).__name__,
        **(dict.fromkeys(SPEAKER_FIELDS) if speakers else {}),
    }


def attributes_speakers(analyzer) -> bool:
    """Whether `analyzer` attributes speech to speakers (its options ask for it)."""
    options = getattr(analyzer, "options", None)
    return getattr(options, "speakers", None) is not None


def analyze_row(analyzer, rec: Recording) -> dict[str, Any]:
    """Analyse one recording into a row; a recording that cannot be analysed gives a row with `error`.

    Raises only FATAL_ERRORS (the model cannot be loaded, bad settings): those would fail every row.
    """
    started = time.perf_counter()
    speakers = attributes_speakers(analyzer)
    try:
        columns = report_columns(analyzer.analyze(rec.path, timeline=True), speakers)
    except FATAL_ERRORS:
        raise
    except SERError as e:
        columns = _error_columns(analyzer, e, str(e), speakers)
    except Exception as e:  # a bug or a library failure on this one file: recorded, the job goes on
        columns = _error_columns(analyzer, e, f"unexpected error while analysing this file ({type(e).__name__}: {e}); "
                                              "please report it with the file if you can", speakers)
    return {
        "path": rec.path, "source": rec.source, "size_bytes": rec.size_bytes, "mtime_ns": rec.mtime_ns,
        **columns,
        "seconds": round(time.perf_counter() - started, 6),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }


def crash_row(rec: Recording, spec=None) -> dict[str, Any]:
    """The row of a recording whose worker process died on it, twice (the second time alone)."""
    return {
        "path": rec.path, "source": rec.source, "size_bytes": rec.size_bytes, "mtime_ns": rec.mtime_ns,
        "backend": getattr(spec, "name", None), "model_id": getattr(spec, "model", None),
        "error": "the worker process died while analysing this file (a crash in a decoder or the model, or out of "
                 "memory); the other files were analysed. Check the file (e.g. with ffprobe) or convert it to WAV",
        "error_type": "WorkerCrashed", "seconds": None,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }
