"""What the benchmark scripts repeat of the package instead of importing it stays in step with it."""

from __future__ import annotations

import importlib.util

from tests.helpers import REPO


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_speed_offers_the_precisions_the_backend_knows():
    from ser_tool.representations.base import PRECISIONS

    parser = _script("model_speed").parser()
    action = next(a for a in parser._actions if a.dest == "precisions")
    assert tuple(action.choices) == PRECISIONS
