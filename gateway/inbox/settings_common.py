"""What the settings pages share: their side navigation, the branch picker, reading a week of hours from a form."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time
from typing import Any

from aiohttp import web

from booking_core.domain.actors import Actor
from booking_core.services import catalog, hours, settings
from booking_core.services.errors import NotFound
from gateway.inbox.formats import as_int
from gateway.inbox.web import render

#: The settings sections: (path, label, what it is for).
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("/inbox/settings/hours", "Branch hours", "When each branch is open, per weekday."),
    ("/inbox/settings/attendance", "Doctor attendance", "Each doctor's weekly days and hours, and dated changes."),
    ("/inbox/settings/examinations", "Examinations", "What the clinic offers: price, duration, where, by whom."),
    ("/inbox/settings/booking-form", "Booking form", "Which fields the public booking form asks for."),
    ("/inbox/settings/reminders", "Reminders", "When patients are reminded of their visit."),
    ("/inbox/settings/messages", "Message texts", "The words of every message patients receive, per language."),
    ("/inbox/settings/queue", "Queue tracker privacy", "What the public queue tracker shows."),
)
#: Period inputs per day on the week forms (a lunch break makes two).
UI_PERIODS = hours.MAX_PERIODS


def settings_page(
    request: web.Request,
    actor: Actor,
    template: str,
    context: dict[str, Any],
    *,
    title: str,
    errors: dict[str, str] | None = None,
    status: int | None = None,
) -> web.StreamResponse:
    """A settings sub-page: the layout plus the settings navigation, the current section marked.

    A form shown again with field ``errors`` (each shown next to its field) answers 422 unless ``status`` says."""
    section = next((path for path, _, _ in SECTIONS if request.path.startswith(path)), "")
    base = {
        "sections": SECTIONS,
        "section": section,
        "errors": errors or {},
        "clinic_wide": settings.may_edit_clinic_wide(actor),
    }
    if status is None:
        status = 422 if errors else 200
    return render(request, actor, template, {**base, **context}, title=title, status=status)


async def branch_choice(db: Any, actor: Actor, raw: str | None) -> tuple[list[catalog.BranchView], int | None]:
    """The branches the actor manages and the one asked for (``?branch=``), else their first; 404 for a branch
    the actor may not see (the same answer as for one that does not exist)."""
    branches = await catalog.list_branches(db, actor=actor)
    wanted = as_int(raw)
    if raw and (wanted is None or wanted not in {b.id for b in branches}):
        raise NotFound("not_found", "There is no such branch.")
    return branches, wanted or (branches[0].id if branches else None)


def parse_time(raw: str) -> time | None:
    """A wall-clock time as a time input sends it ("08:30", "08:30:00"); None when it is not one."""
    raw = raw.strip()
    if not raw or len(raw) > 8:
        return None
    try:
        value = time.fromisoformat(raw)
    except ValueError:
        return None
    return None if value.tzinfo is not None else value.replace(microsecond=0)


def week_from_form(form: Mapping[str, str]) -> tuple[dict[int, list[hours.Period]], dict[str, str]]:
    """The week a week form sent (``open-D``, ``starts-D-I``, ``ends-D-I``) and the errors of reading it, per day."""
    week: dict[int, list[hours.Period]] = {}
    errors: dict[str, str] = {}
    for day in range(7):
        name = hours.WEEKDAYS[day]
        periods: list[hours.Period] = []
        if form.get(f"open-{day}"):
            for index in range(UI_PERIODS):
                raw_start, raw_end = form.get(f"starts-{day}-{index}", ""), form.get(f"ends-{day}-{index}", "")
                if not raw_start.strip() and not raw_end.strip():
                    continue
                starts, ends = parse_time(raw_start), parse_time(raw_end)
                if starts is None or ends is None:
                    errors[hours.day_key(day)] = f"{name}: enter both times of a period, like 08:00 and 17:00."
                    continue
                periods.append(hours.Period(starts, ends))
            if not periods and hours.day_key(day) not in errors:
                errors[hours.day_key(day)] = f"{name}: enter the hours, or untick it."
        week[day] = periods
    return week, errors


def week_values(week: Mapping[int, tuple[hours.Period, ...]]) -> dict[str, str]:
    """A stored week as the form's values (what :func:`week_from_form` reads back)."""
    values: dict[str, str] = {}
    for day, periods in week.items():
        if periods:
            values[f"open-{day}"] = "1"
        for index, period in enumerate(periods[:UI_PERIODS]):
            values[f"starts-{day}-{index}"] = f"{period.starts:%H:%M}"
            values[f"ends-{day}-{index}"] = f"{period.ends:%H:%M}"
    return values


def week_summary(periods: tuple[hours.Period, ...]) -> str:
    return ", ".join(str(p) for p in periods)
