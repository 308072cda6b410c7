"""Text a database can keep: NULs dropped, lone surrogates replaced, pairs and everything else untouched."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from booking_core.domain.text import storable, storable_payload, unstorable_at
from channels.webchat.adapter import ChatFrame, FrameError, read_frame


@given(st.text(alphabet=st.characters(codec=None)))
def test_storable_text_always_encodes_as_utf8_without_nuls(text: str) -> None:
    kept = storable(text)
    assert "\x00" not in kept
    kept.encode("utf-8")  # raises for a lone surrogate
    assert unstorable_at(kept) is None


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00")))
def test_text_that_was_storable_is_unchanged(text: str) -> None:
    assert storable(text) == text


def test_a_nul_is_dropped_and_half_an_emoji_replaced_but_a_whole_emoji_kept() -> None:
    assert storable("Halo\x00 \ud83c 🌸") == "Halo \ufffd 🌸"


def test_a_payload_is_cleaned_in_its_keys_and_values_at_any_depth() -> None:
    payload = {"a\x00": ["x\x00", {"b": "\udfff"}], "n": 1, "t": True}
    assert storable_payload(payload) == {"a": ["x", {"b": "\ufffd"}], "n": 1, "t": True}


def test_unstorable_at_names_the_place() -> None:
    assert unstorable_at({"lines": [{"name": "ok"}, {"name": "x\x00"}]}) == ("lines", 1, "name")
    assert unstorable_at({"k\ud800": 1}) == ("k\ud800",)
    assert unstorable_at({"fine": ["🌸", 2, None]}) is None


def test_a_web_chat_message_with_a_nul_and_half_an_emoji_is_kept_cleaned() -> None:
    raw = json.dumps({"type": "message", "text": "Halo\x00 \ud83c kak", "data": None})
    frame = read_frame(raw)
    assert isinstance(frame, ChatFrame)
    assert frame.text == "Halo \ufffd kak"
    assert frame.raw["text"] == "Halo \ufffd kak"
    json.dumps(frame.raw, ensure_ascii=False).encode("utf-8")


def test_a_web_chat_frame_nested_past_reason_is_malformed_not_a_crash() -> None:
    with pytest.raises(FrameError) as refused:
        read_frame("[" * 3000)
    assert refused.value.code == "malformed"
