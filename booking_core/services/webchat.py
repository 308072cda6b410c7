"""What a web-chat visitor sees when the widget (re)connects: their conversation so far, from the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from booking_core.db.engine import Db
from booking_core.db.queries import website as queries
from booking_core.domain.messages import Button

HISTORY_LIMIT = 50


@dataclass(frozen=True)
class HistoryEntry:
    """One message of the visitor's history; ``id`` matches what the widget saw live (its frame id, our send id)."""

    id: str
    direction: Literal["in", "out"]
    text: str
    at: datetime
    buttons: tuple[Button, ...] = ()
    image: str | None = None  # a data URL

    def to_frame(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "direction": self.direction,
            "text": self.text,
            "buttons": [{"label": b.label, "data": b.data} for b in self.buttons],
            "image": self.image,
            "at": self.at.isoformat(),
        }


async def history(db: Db, visitor_id: str, *, limit: int = HISTORY_LIMIT) -> list[HistoryEntry]:
    """The last ``limit`` messages in and out of the visitor's conversations, oldest first."""
    rows = await queries.visitor_history(db, channel="webchat", external_id=visitor_id, limit=limit)
    return [_entry(row) for row in rows]


def _entry(row: dict[str, Any]) -> HistoryEntry:
    payload = row["payload"] or {}
    if row["direction"] == "in":
        return HistoryEntry(
            id=row["external_id"] or f"m{row['id']}",
            direction="in",
            text=row["text"] or payload.get("button_data") or "",
            at=row["created_at"],
        )
    buttons = tuple(
        Button(str(b.get("label", "")), str(b.get("data", "")))
        for b in payload.get("buttons", [])
        if isinstance(b, dict)
    )
    return HistoryEntry(
        id=row["provider_id"] or f"m{row['id']}",
        direction="out",
        text=row["text"] or "",
        at=row["created_at"],
        buttons=buttons,
        image=_data_url((row["outbox_payload"] or {}).get("image")),
    )


def _data_url(image: Any) -> str | None:
    if not isinstance(image, dict) or not image.get("content"):
        return None
    content_type = str(image.get("content_type") or "image/png")
    if not content_type.startswith("image/"):
        return None
    return f"data:{content_type};base64,{image['content']}"
