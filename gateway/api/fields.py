"""Field types shared by the API's request and response models, so that a range or a format is said once.

Ids and counts are bounded by the database columns they end up in (an id past 2**31 - 1 would be a 500 from
PostgreSQL's ``integer``, not a 404). Request bodies are validated strictly (see ``registry.read_json_body``): a JSON
``true`` is not the number 1 and ``"5"`` is not 5; query strings are text by nature and are read as numbers.
"""

from __future__ import annotations

import re
from datetime import time
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1

#: A row id in an ``integer`` column: what nearly every table uses.
Id = Annotated[int, Field(ge=1, le=MAX_INT32)]
#: A row id in a ``bigint`` column (outbox messages, audit entries).
BigId = Annotated[int, Field(ge=1, le=MAX_INT64)]
#: Any other whole number kept in an ``integer`` column.
Int32 = Annotated[int, Field(ge=-MAX_INT32 - 1, le=MAX_INT32)]

#: Money as entered: a finite decimal (JSON string or number); the service checks its size and the currency's minor
#: units (``invalid_amount``).
Amount = Annotated[Decimal, Field(allow_inf_nan=False, max_digits=24)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. IDR")]

WALL_TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$"
_WALL_TIME = re.compile(WALL_TIME_PATTERN)


def _wall_time(value: Any) -> Any:
    """Text must be ``HH:MM[:SS[.ffffff]]`` (no offset: it is the branch's own clock); a ``time`` passes as it is."""
    if isinstance(value, str):
        if not _WALL_TIME.fullmatch(value):
            raise ValueError("a wall time is HH:MM or HH:MM:SS, without an offset")
        return time.fromisoformat(value)
    if isinstance(value, time) and value.tzinfo is not None:
        raise ValueError("a wall time has no offset: it is the branch's own clock")
    return value


#: A time of day on the branch's clock, e.g. ``"09:00"``: no offset (the branch's time zone says where it is).
#: Documented as a pattern, not ``format: time``, which in OpenAPI means RFC 3339 and so requires an offset.
WallTime = Annotated[
    time,
    BeforeValidator(_wall_time),
    PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "pattern": WALL_TIME_PATTERN, "examples": ["09:00", "17:30:00"]}),
]
