"""Reading Telegram updates: the shortcut for a patient's plain text reads it exactly as aiogram's model does.

Nearly every update is a person writing text in a private chat, so the adapter reads that shape straight from the
JSON and leaves everything else to aiogram's ``Update`` model. These tests hold the shortcut to the model: whatever
it accepts, the model reads the same way (no network, no database).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from channels.telegram.adapter import _parse_update, _plain_text_message

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "telegram"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("name", ["text_message", "emoji_rtl_zero_width", "html_in_first_name", "text_with_nul",
                                  "long_text", "start", "start_with_payload"])  # fmt: skip
def test_a_patients_text_message_takes_the_shortcut_and_reads_as_the_model_reads_it(name: str) -> None:
    raw = fixture(name)

    plain = _plain_text_message(raw)

    assert plain is not None
    assert plain == _parse_update(copy.deepcopy(raw))


@pytest.mark.parametrize("name", ["callback_query", "own_contact", "sticker",
                                  "photo_with_caption", "edited_message", "group_message", "my_chat_member",
                                  "unknown_update_type"])  # fmt: skip
def test_everything_but_plain_text_is_left_to_the_model(name: str) -> None:
    assert _plain_text_message(fixture(name)) is None


def test_a_bot_writing_is_left_to_the_model_which_ignores_it() -> None:
    raw = fixture("text_message")
    raw["message"]["from"]["is_bot"] = True

    assert _plain_text_message(raw) is None
    assert _parse_update(raw) is None


def test_a_date_in_milliseconds_is_left_to_the_model() -> None:
    raw = fixture("text_message")
    raw["message"]["date"] *= 1000

    assert _plain_text_message(raw) is None
    parsed = _parse_update(raw)
    assert parsed is not None and parsed.received_at.year == 2024


# --- the property: any update the shortcut accepts, the model reads identically ---

FIELDS: list[tuple[str | int, ...]] = [
    ("update_id",),
    ("message",),
    ("message", "message_id"),
    ("message", "date"),
    ("message", "text"),
    ("message", "entities"),
    ("message", "entities", 0),
    ("message", "entities", 0, "type"),
    ("message", "entities", 0, "offset"),
    ("message", "entities", 0, "length"),
    ("message", "entities", 0, "custom_emoji_id"),
    ("message", "chat"),
    ("message", "chat", "id"),
    ("message", "chat", "type"),
    ("message", "chat", "first_name"),
    ("message", "chat", "last_name"),
    ("message", "chat", "username"),
    ("message", "from"),
    ("message", "from", "id"),
    ("message", "from", "is_bot"),
    ("message", "from", "first_name"),
    ("message", "from", "last_name"),
    ("message", "from", "username"),
    ("message", "from", "language_code"),
    ("message", "from", "is_premium"),
]
EXTRA_KEYS = [
    "entities",
    "url",
    "user",
    "offset",
    "photo",
    "reply_to_message",
    "contact",
    "edited_message",
    "callback_query",
    "title",
]

texts = st.text(alphabet=st.characters(codec=None), max_size=12) | st.sampled_from(
    ["", "  ", "/start", "/start abc", "\x00", "Halo\x00", "\ud800", "private", "group", "id-ID"]
)
ints = st.integers(min_value=-(10**21), max_value=10**21) | st.sampled_from([0, 1, 10**10 - 1, 10**10, 2**63])
scalars = st.none() | st.booleans() | ints | st.floats(allow_nan=False, allow_infinity=False) | texts
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=2) | st.dictionaries(texts, inner, max_size=2),
                      max_leaves=4)  # fmt: skip

Change = tuple[str, tuple[str | int, ...], Any]
#: Fields whose usual JSON type is text or a number: edits that keep that type are the ones the shortcut may take.
TEXT_FIELDS = [f for f in FIELDS if f[-1] in {"text", "type", "first_name", "last_name", "username", "language_code",
                                               "custom_emoji_id"}]  # fmt: skip
NUMBER_FIELDS = [f for f in FIELDS if f[-1] in {"update_id", "message_id", "date", "id", "offset", "length"}]
changes = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(TEXT_FIELDS), texts),
    st.tuples(st.just("set"), st.sampled_from(NUMBER_FIELDS), ints),
    st.tuples(st.just("set"), st.sampled_from(FIELDS), values),
    st.tuples(st.just("delete"), st.sampled_from(FIELDS), st.none()),
    st.tuples(st.just("add"), st.sampled_from([(), ("message",), ("message", "chat"), ("message", "from"),
                                                ("message", "entities", 0)]),
              st.tuples(st.sampled_from(EXTRA_KEYS), values)),
)  # fmt: skip


def _child(node: Any, key: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(key)
    if isinstance(node, list) and isinstance(key, int) and key < len(node):
        return node[key]
    return None


def changed(raw: dict[str, Any], edits: list[Change]) -> dict[str, Any]:
    """``raw`` with each edit applied where its path still leads somewhere (set, delete, or add a key)."""
    for action, path, value in edits:
        parent: Any = raw
        for key in path[:-1] if action != "add" else path:
            parent = _child(parent, key)
        last = path[-1] if path else None
        if action == "add" and isinstance(parent, dict):
            parent[value[0]] = value[1]
        elif isinstance(parent, dict) and isinstance(last, str):
            if action == "set":
                parent[last] = value
            else:
                parent.pop(last, None)
        elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
            if action == "set":
                parent[last] = value
            else:
                del parent[last]
    return raw


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["text_message", "emoji_rtl_zero_width", "start_with_payload"]), st.lists(changes, max_size=3))
def test_whatever_the_shortcut_accepts_the_model_reads_the_same_way(name: str, edits: list[Change]) -> None:
    raw = changed(fixture(name), edits)

    plain = _plain_text_message(copy.deepcopy(raw))

    event("taken by the shortcut" if plain is not None else "left to the model")
    if plain is not None:
        assert plain == _parse_update(raw)
