"""Schemathesis hooks for ``test_api_fuzz.py`` (loaded through ``SCHEMATHESIS_HOOKS``).

Random ids almost never name a row, so most calls would stop at a 404 before the clinic's rules run. Valid ids (in
the path, the query and ``*_id`` / ``*_ids`` fields of a body) are folded onto the demo clinic's first rows
(branches, doctors, examinations... all start at 1), so the fuzzing reaches the services; ids outside the column's
range (the coverage phase's 2**31, 0, -1) and values of the wrong type are sent as generated.
"""

from __future__ import annotations

from typing import Any

import schemathesis

#: The demo clinic has fewer rows than this of every kind that has an id in a path.
DEMO_ROWS = 30
MAX_INT32 = 2**31 - 1


def _demo_id(value: Any) -> Any:
    if type(value) is int and DEMO_ROWS < value <= MAX_INT32:
        return value % DEMO_ROWS + 1
    return value


def _demo_ids(values: dict[str, Any]) -> dict[str, Any]:
    folded = {}
    for name, value in values.items():
        if name.endswith("_id"):
            value = _demo_id(value)
        elif name.endswith("_ids") and isinstance(value, list):
            value = [_demo_id(item) for item in value]
        folded[name] = value
    return folded


@schemathesis.hook
def map_query(context: Any, query: dict[str, Any] | None) -> dict[str, Any] | None:
    return _demo_ids(query) if query else query


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    return _demo_ids(body) if isinstance(body, dict) else body


@schemathesis.hook
def map_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> dict[str, Any] | None:
    if not path_parameters:  # an operation without ids in its path
        return path_parameters
    return {name: _demo_id(value) for name, value in path_parameters.items()}
