"""Staff take over a chat: reply on the patient's channel, pause the bot, hand the chat back to it.

A reply to a lead goes to the lead's own chat, else to the patient's most recent chat elsewhere
(:func:`reply_target`); writing one pauses the bot on that chat, so it does not talk over staff.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from booking_core.db.engine import Db
from booking_core.db.queries import conversation as queries
from booking_core.db.tables import Conversation, Lead
from booking_core.domain.actors import Actor
from booking_core.domain.messages import CHATS, MAX_OUTBOUND_TEXT, Channel
from booking_core.services import audit, notify
from booking_core.services.errors import Conflict, Invalid, NotFound

__all__ = ["MAX_REPLY", "ReplyTarget", "StaffReply", "reply_target", "set_bot_paused", "staff_reply"]

MAX_REPLY = MAX_OUTBOUND_TEXT
_REPLY_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


@dataclass(frozen=True)
class ReplyTarget:
    """Where staff replies to a lead go: the lead's own chat, else the patient's most recent chat elsewhere."""

    channel: Channel
    recipient: str
    identity_id: int
    conversation_id: int | None  # None: the identity has no open conversation (one is opened by the reply)
    display_name: str
    bot_paused: bool


@dataclass(frozen=True)
class StaffReply:
    """A reply staff wrote. ``outbox_id`` is None for a repeat of the same form (same key): nothing new is sent."""

    lead_id: int
    outbox_id: int | None
    conversation_id: int
    channel: str
    paused_now: bool  # the bot was answering this chat and is paused by this reply


async def _staff_lead(db: Db, lead_id: int, actor: Actor) -> Lead:
    lead = await queries.lead(db, lead_id)
    if lead is None or (lead.branch_id is not None and not actor.can_see_branch(lead.branch_id)):
        raise NotFound("not_found", f"There is no lead {lead_id}.")
    return lead


async def reply_target(db: Db, lead: Lead) -> ReplyTarget | None:
    """The chat a reply to ``lead`` goes to, or None when the patient has no chat we can write to."""
    own = await queries.conversation(db, lead.conversation_id)
    if own is not None:
        identity = await queries.identity(db, own.identity_id)
        if identity is not None and identity.channel in CHATS:
            chat = notify.Chat.of(identity, own.id)
            return ReplyTarget(
                chat.channel, chat.recipient, chat.identity_id, chat.conversation_id, identity.display_name,
                own.bot_paused,
            )  # fmt: skip
    patient = await queries.patient(db, lead.patient_id)
    if patient is None:
        return None
    found = await notify.patient_reach(db, patient.id, prefer_channel=lead.channel)
    if found is None:
        return None
    open_chat = await queries.conversation(db, found.conversation_id)
    identity = await queries.identity(db, found.identity_id)
    return ReplyTarget(
        found.channel,
        found.recipient,
        found.identity_id,
        found.conversation_id,
        identity.display_name if identity else "",
        bool(open_chat and open_chat.bot_paused),
    )


def _no_chat(lead: Lead) -> Conflict:
    phone = f" Call them at {lead.contact_phone}." if lead.contact_phone else ""
    return Conflict("no_chat", f"This patient has no chat to reply to (the request came from the booking form).{phone}")


async def _target_chat(db: Db, lead: Lead, target: ReplyTarget, now: datetime) -> Conversation:
    """The target's conversation, locked (the dialog answering a message holds the same lock): opened if needed."""
    conversation_id = target.conversation_id
    if conversation_id is None:
        identity = await queries.identity(db, target.identity_id)
        assert identity is not None
        opened = await queries.open_conversation_for(db, identity, now=now)
        conversation_id = opened.id
    conversation = await queries.lock_conversation(db, conversation_id)
    if conversation is None:  # pragma: no cover - deleted between two statements of this transaction
        raise _no_chat(lead)
    return conversation


async def staff_reply(
    db: Db, lead_id: int, *, actor: Actor, text: str, key: str | None = None, now: datetime | None = None
) -> StaffReply:
    """Write staff's ``text`` to the patient on their channel (an outbox row, delivered after commit) and pause
    the bot on that chat, so it does not talk over staff. ``key`` (one per reply form) makes a double submit one
    message. Refusals: ``reply_empty``, ``reply_too_long``, ``no_chat`` (nobody to write to)."""
    now = now or datetime.now(UTC)
    text = text.replace("\x00", "").replace("\r\n", "\n").strip()
    if not text:
        raise Invalid("reply_empty", "Write a reply first.")
    if len(text) > MAX_REPLY:
        raise Invalid("reply_too_long", f"A reply can be at most {MAX_REPLY} characters; this one is {len(text)}.")
    lead = await _staff_lead(db, lead_id, actor)
    target = await reply_target(db, lead)
    if target is None:
        raise _no_chat(lead)
    conversation = await _target_chat(db, lead, target, now)
    chat = notify.Chat(target.channel, target.recipient, target.identity_id, conversation.id)
    usable_key = key if key and len(key) <= 64 and set(key) <= _REPLY_KEY_CHARS else None
    outbox_id = await notify.write(
        db, chat, "staff_reply", notify.Notice(text, template_values={"text": text}),
        dedupe_key=f"staff-reply-{lead.id}-{usable_key}" if usable_key else None, author="staff",
    )  # fmt: skip
    if outbox_id is None:  # the same form posted twice
        return StaffReply(lead.id, None, conversation.id, target.channel, paused_now=False)
    paused_now = not conversation.bot_paused
    if paused_now:
        conversation.bot_paused = True
        audit.record(
            db,
            actor,
            "conversation.paused",
            "conversation",
            conversation.id,
            {"via": "staff_reply", "lead_id": lead.id},
        )
    audit.record(
        db,
        actor,
        "lead.replied",
        "lead",
        lead.id,
        {"outbox_id": outbox_id, "channel": target.channel, "conversation_id": conversation.id},
    )
    return StaffReply(lead.id, outbox_id, conversation.id, target.channel, paused_now)


async def set_bot_paused(db: Db, lead_id: int, *, actor: Actor, paused: bool) -> bool:
    """Take the lead's chat over from the bot (``paused=True``) or hand it back; False when it already was so.

    Messages that arrived while the bot was paused stay with staff: the bot answers from the next one on."""
    lead = await _staff_lead(db, lead_id, actor)
    target = await reply_target(db, lead)
    if target is None or target.conversation_id is None:
        raise _no_chat(lead)
    conversation = await queries.lock_conversation(db, target.conversation_id)
    if conversation is None or conversation.bot_paused == paused:
        return False
    conversation.bot_paused = paused
    action = "conversation.paused" if paused else "conversation.resumed"
    audit.record(db, actor, action, "conversation", conversation.id, {"via": "staff", "lead_id": lead.id})
    return True
