"""Every text we send a patient is a jinja2 file in ``templates/messages/<lang>/``; this renders them.

Plain text, so autoescape is off; :class:`jinja2.StrictUndefined` makes a missing value an error rather than an
empty gap in a patient's message. Button labels are macros in ``<lang>/_buttons.txt``. Dates and times arrive as
ISO strings in the branch's local time and are shown with the filters ``day``, ``date``, ``time`` and ``when``
(localised with babel).
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from babel.dates import format_date, format_time
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context as TemplateContext

from booking_core.domain.dialog_types import LANGUAGES, Reply
from booking_core.domain.messages import Button

__all__ = ["TEMPLATES", "label", "render", "render_reply"]

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "messages"


def _language(lang: str) -> str:
    return lang if lang in LANGUAGES else "en"


def _instant(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _day_of(value: str | date | datetime) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return datetime.fromisoformat(value).date() if "T" in value else date.fromisoformat(value)


@pass_context
def _day(ctx: TemplateContext, value: str | date) -> str:
    return format_date(_day_of(value), "EEE d MMM", locale=ctx["lang"])


@pass_context
def _date(ctx: TemplateContext, value: str | date) -> str:
    return format_date(_day_of(value), "EEEE, d MMMM y", locale=ctx["lang"])


@pass_context
def _time(ctx: TemplateContext, value: str | datetime) -> str:
    return format_time(_instant(value), "HH:mm", locale=ctx["lang"])


@pass_context
def _when(ctx: TemplateContext, value: str | datetime) -> str:
    instant = _instant(value)
    return f"{format_date(instant.date(), 'EEE d MMM', locale=ctx['lang'])}, {format_time(instant, 'HH:mm')}"


@cache
def environment(root: Path = TEMPLATES) -> Environment:
    """One environment per process (templates are compiled once)."""
    env = Environment(
        loader=FileSystemLoader(str(root)),
        autoescape=False,  # noqa: S701 - plain-text chat messages, never HTML (adapters escape for their markup)
        undefined=StrictUndefined,
        keep_trailing_newline=False,
    )
    env.filters.update(day=_day, date=_date, time=_time, when=_when)
    return env


def render(lang: str, name: str, /, **values: Any) -> str:
    """``templates/messages/<lang>/<name>.txt`` with ``values``; unknown languages fall back to English."""
    lang = _language(lang)
    template = environment().get_template(f"{lang}/{name}.txt")
    return template.render(lang=lang, **values).strip()


def label(lang: str, key: str, /, **values: Any) -> str:
    """A button label: the macro ``key`` of ``<lang>/_buttons.txt``."""
    lang = _language(lang)
    module = environment().get_template(f"{lang}/_buttons.txt").make_module({"lang": lang})
    return str(getattr(module, key)(**values)).strip()


def render_reply(lang: str, reply: Reply) -> tuple[str, tuple[Button, ...]]:
    """A dialog reply as text and buttons (every dialog template may show a hint, so ``hint`` defaults to None)."""
    text = render(lang, reply.template, **{"hint": None, **reply.vars})
    buttons = tuple(Button(label(lang, b.label, **b.vars), b.data) for b in reply.buttons)
    return text, buttons
