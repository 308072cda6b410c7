"""Text a database can keep: what every entry point does with NUL bytes and lone surrogates.

PostgreSQL refuses ``\\x00`` in ``text`` and ``\\u0000`` in ``jsonb``, and UTF-8 cannot encode a lone surrogate (half
of an emoji escape such as ``"\\ud83c"``, which JSON and percent-encoding let through). Either would be a 500 when
stored. The rule, the same on every channel:

* a patient's message (Telegram, WhatsApp, web chat, the booking and confirmation forms) is **cleaned** with
  :func:`storable` / :func:`storable_payload`: NULs dropped, a lone surrogate replaced by U+FFFD, so the message is
  never lost;
* a staff API request holding such text is **refused** (422), found with :func:`unstorable_at`: an integration
  should learn that it sent something it did not mean.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` without NULs, each lone surrogate replaced by U+FFFD (pairs never reach a ``str`` unjoined)."""
    if text.isascii():
        return text.replace("\x00", "") if "\x00" in text else text
    return _SURROGATE.sub(REPLACEMENT, text.replace("\x00", ""))


def is_storable(text: str) -> bool:
    return "\x00" not in text and (text.isascii() or _SURROGATE.search(text) is None)


def storable_payload(value: Any) -> Any:
    """A decoded JSON value or form (dicts, lists, strings) with every string, keys included, made :func:`storable`."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable_payload(key): storable_payload(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable_payload(item) for item in value]
    return value


def unstorable_at(value: Any, path: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """Where in a decoded JSON value the first string a database cannot keep is (a key counts as its own place)."""
    if isinstance(value, str):
        return None if is_storable(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and not is_storable(key):
                return (*path, key)
            found = unstorable_at(item, (*path, key))
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = unstorable_at(item, (*path, index))
            if found is not None:
                return found
    return None
