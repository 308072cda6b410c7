"""Clinic settings that staff edit (defaults live here; the database holds the current values)."""

from __future__ import annotations

from typing import Any

from booking_core.db.engine import Db
from booking_core.db.queries import clinic as queries

DEFAULT_SETTINGS: dict[str, Any] = {
    "reminder_offsets_min": [24 * 60, 2 * 60],
    "cancel_reasons": [
        "patient_request",
        "no_show",
        "doctor_unavailable",
        "clinic_closed",
        "duplicate",
        "other",
    ],
    "hold_minutes": 10,
    "queue_sort": "arrival",
    "queue_privacy": {"show_name": "masked", "show_doctor": True, "show_eta": True},
    "booking_form": {
        "fields": {
            "name": {"required": True},
            "phone": {"required": True},
            "email": {"required": False},
            "branch": {"required": True},
            "examination": {"required": True},
            "preferred_date": {"required": False},
            "preferred_time": {"required": False},
            "note": {"required": False},
        }
    },
    "loyalty": {"earn_per": "10000", "point_value": "100", "cap_pct": "20"},
    "dialog_books_directly": False,
    # Sites (besides PUBLIC_BASE_URL) whose pages may embed the chat widget, e.g. ["https://www.klinik-sehat.id"].
    "webchat_allowed_origins": [],
}


async def get(db: Db, key: str) -> Any:
    return await queries.get_setting(db, key, DEFAULT_SETTINGS.get(key))
