"""Batch analysis of archives: `ser batch` and `ser batch-report`.

    >>> from ser_tool.batch import run_batch, read_rows
    >>> from ser_tool.backends import BackendSpec
    >>> run_batch(["calls/"], "out/", spec=BackendSpec("embedded"), workers=4)
    >>> rows = read_rows("out/")

inputs (files, folders, globs, manifests, path lists) -> rows (one per recording, from its AffectReport)
-> engines (local worker processes, or Ray Data) -> store (atomic Parquet/JSONL parts, resume, summary.json)
-> batch_report (distributions, plots, slowest and failed files). pyarrow is needed to write and read
the parts, Ray only for the Ray engine, matplotlib only for the report's pictures.
"""

from ser_tool.batch.inputs import Inputs, Recording, collect_inputs
from ser_tool.batch.job import ENGINES, AnalyzerFactory, BatchResult, Progress, StopRequest, available_cores, run_batch
from ser_tool.batch.rows import ROW_FIELDS, SPEAKER_FIELDS, analyze_row, arrow_schema, row_fields
from ser_tool.batch.store import FORMATS, OutputStore, read_rows, read_table

__all__ = [
    "ENGINES", "FORMATS", "ROW_FIELDS", "SPEAKER_FIELDS", "AnalyzerFactory", "BatchResult", "Inputs", "OutputStore", "Progress",
    "Recording", "StopRequest", "analyze_row", "arrow_schema", "available_cores", "collect_inputs", "read_rows", "read_table", "row_fields", "run_batch",
]
