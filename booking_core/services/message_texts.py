"""The clinic's own message texts: every outbound message may be rewritten per language (clinic-wide), checked
before it is saved, and reset to the standard text. Each change is audited."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from booking_core.db.engine import Db
from booking_core.db.queries import clinic as queries
from booking_core.db.queries import settings as queries_s
from booking_core.domain.actors import Actor
from booking_core.services import audit, messages
from booking_core.services.errors import NotFound
from booking_core.services.settings import get, require_clinic_wide, require_manager


@dataclass(frozen=True)
class MessageText:
    """One message in one language: the standard text, the clinic's own (if any) and the values it may use."""

    lang: str
    name: str
    default: str
    override: str | None
    variables: tuple[str, ...]

    @property
    def text(self) -> str:
        """What the clinic sends today."""
        return self.override if self.override is not None else self.default


def _stored_overrides(value: Any) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for lang, names in value.items() if isinstance(value, Mapping) else ():
        if isinstance(names, Mapping):
            found[lang] = {n: t for n, t in names.items() if isinstance(t, str)}
    return found


async def message_texts(db: Db, lang: str, *, actor: Actor) -> list[MessageText]:
    """Every message of a language the clinic may rewrite, with its own text where it has one."""
    require_manager(actor)
    if lang not in messages.overridable():
        raise NotFound("not_found", "There is no such language.")
    stored = _stored_overrides(await get(db, messages.OVERRIDES_SETTING)).get(lang, {})
    return [
        MessageText(lang, name, messages.default_text(lang, name), stored.get(name), messages.variables(lang, name))
        for name in messages.overridable()[lang]
    ]


async def message_text(db: Db, lang: str, name: str, *, actor: Actor) -> MessageText:
    require_manager(actor)
    default = messages.default_text(lang, name)  # NotFound for an unknown message
    stored = _stored_overrides(await get(db, messages.OVERRIDES_SETTING)).get(lang, {})
    return MessageText(lang, name, default, stored.get(name), messages.variables(lang, name))


async def save_message_text(db: Db, lang: str, name: str, text: str, *, actor: Actor) -> bool:
    """Use the clinic's own text for a message (clinic-wide). It must compile, use only the message's values and
    render with sample values (:func:`messages.check_override`), else nothing is saved. Every process uses it
    within :data:`messages.OVERRIDES_TTL` seconds; the caller calls :func:`messages.forget_overrides` after commit
    so this one does at once. Saving the standard text itself removes the override. Returns whether changed."""
    require_clinic_wide(actor)
    checked = messages.check_override(lang, name, text)
    default = messages.default_text(lang, name)
    stored = _stored_overrides(await queries_s.lock_setting(db, messages.OVERRIDES_SETTING, {}))
    before = stored.get(lang, {}).get(name)
    after = None if checked == default.strip() else checked
    if before == after:
        return False
    if after is None:
        stored.get(lang, {}).pop(name, None)
    else:
        stored.setdefault(lang, {})[name] = after
    await _save_overrides(db, stored, "settings.message_changed", lang, name, before, after, actor=actor)
    return True


async def reset_message_text(db: Db, lang: str, name: str, *, actor: Actor) -> bool:
    """Go back to the standard text of a message. Returns whether the clinic had its own."""
    require_clinic_wide(actor)
    messages.default_text(lang, name)  # NotFound for an unknown message
    stored = _stored_overrides(await queries_s.lock_setting(db, messages.OVERRIDES_SETTING, {}))
    before = stored.get(lang, {}).pop(name, None)
    if before is None:
        return False
    await _save_overrides(db, stored, "settings.message_reset", lang, name, before, None, actor=actor)
    return True


async def _save_overrides(
    db: Db,
    stored: dict[str, dict[str, str]],
    action: str,
    lang: str,
    name: str,
    before: str | None,
    after: str | None,
    *,
    actor: Actor,
) -> None:
    """Store the clinic's own texts (languages left without any dropped) and audit the one that changed."""
    await queries.put_setting(db, messages.OVERRIDES_SETTING, {k: v for k, v in stored.items() if v})
    audit.record(
        db, actor, action, "clinic_setting", None, {"lang": lang, "message": name, "from": before, "to": after}
    )
