"""Every text we send a patient is a jinja2 file in ``templates/messages/<lang>/``; this renders them.

Plain text, so autoescape is off; :class:`jinja2.StrictUndefined` makes a missing value an error rather than an
empty gap in a patient's message. Button labels are macros in ``<lang>/_buttons.txt``. Dates and times arrive as
ISO strings in the branch's local time and are shown with the filters ``day``, ``date``, ``time`` and ``when``
(localised with babel).

The clinic may replace a message's text per language (setting ``message_templates``, edited on the staff settings
page). Overrides are read from the database at most every :data:`OVERRIDES_TTL` seconds per process
(:func:`refresh_overrides`, called by every service before it renders a batch of messages), are checked when saved
(:func:`check_override`: it must compile, use only the variables the standard text gets, and render with sample
values) and run in a sandboxed environment. Should an override ever fail at render time anyway, the standard text
is sent instead: a patient never misses a message because of a clinic's edit.
"""

from __future__ import annotations

import logging
import time as clock
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_date, format_time
from jinja2 import (
    BaseLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateSyntaxError,
    meta,
    pass_context,
)
from jinja2.runtime import Context as TemplateContext
from jinja2.sandbox import SandboxedEnvironment

from booking_core.db.engine import Db
from booking_core.db.queries import clinic as clinic_queries
from booking_core.domain.dialog import LANGUAGES, Reply
from booking_core.domain.messages import MAX_TEXT, Button
from booking_core.services.errors import Invalid, NotFound

__all__ = [
    "MAX_OVERRIDE",
    "OVERRIDES_SETTING",
    "OVERRIDES_TTL",
    "TEMPLATES",
    "check_override",
    "default_text",
    "forget_overrides",
    "label",
    "overridable",
    "override_warnings",
    "preview",
    "refresh_overrides",
    "render",
    "render_reply",
    "sample_values",
    "use_overrides",
    "variables",
]

log = logging.getLogger(__name__)

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


def _configure(env: Environment) -> Environment:
    env.filters.update(day=_day, date=_date, time=_time, when=_when)
    return env


@cache
def environment(root: Path = TEMPLATES) -> Environment:
    """One environment per process (templates are compiled once): the standard texts, as shipped."""
    return _configure(
        Environment(
            loader=FileSystemLoader(str(root)),
            autoescape=False,  # noqa: S701 - plain-text chat messages, never HTML (adapters escape for their markup)
            undefined=StrictUndefined,
            keep_trailing_newline=False,
        )
    )


# --- the clinic's own texts (overrides) -----------------------------------------------------------------------

#: Clinic setting: ``{"en": {"reminder": "text ..."}, "id": {...}}``.
OVERRIDES_SETTING = "message_templates"
#: How long a process trusts the overrides it read (a change reaches every worker within this many seconds).
OVERRIDES_TTL = 5.0
#: The longest text an override may have (a rendered message is cut at the channel limit anyway).
MAX_OVERRIDE = 3000


@dataclass
class _Overrides:
    """This process's copy of the clinic's overrides: template path ("en/reminder.txt") → source."""

    texts: dict[str, str] = field(default_factory=dict)
    version: int = 0  # bumped on every change, so compiled templates of the old texts are not used again
    loaded_at: float | None = None


_OVERRIDES = _Overrides()


class _OverridingLoader(BaseLoader):
    """The standard files, except where the clinic has its own text (includes see the overrides too)."""

    def __init__(self, root: Path) -> None:
        self.files = FileSystemLoader(str(root))

    def get_source(self, environment: Environment, template: str) -> tuple[str, str | None, Callable[[], bool]]:
        version = _OVERRIDES.version
        text = _OVERRIDES.texts.get(template)
        if text is not None:
            return text, None, lambda: _OVERRIDES.version == version
        source, filename, uptodate = self.files.get_source(environment, template)
        return source, filename, lambda: _OVERRIDES.version == version and (uptodate is None or uptodate())

    def list_templates(self) -> list[str]:
        return self.files.list_templates()


@cache
def _clinic_environment() -> Environment:
    """Overrides are written by clinic staff: rendered in a sandbox (no attribute tricks, bounded ``range``)."""
    return _configure(
        SandboxedEnvironment(
            loader=_OverridingLoader(TEMPLATES),
            autoescape=False,  # plain text, as above
            undefined=StrictUndefined,
            keep_trailing_newline=False,
        )
    )


@cache
def overridable() -> dict[str, tuple[str, ...]]:
    """Per language, the messages a clinic may rewrite: every text file except button sheets (macros) and
    internal pieces (names starting with ``_``)."""
    found: dict[str, tuple[str, ...]] = {}
    for lang in LANGUAGES:
        names = []
        for path in sorted((TEMPLATES / lang).glob("*.txt")):
            if not path.name.startswith("_") and "{% macro" not in path.read_text(encoding="utf-8"):
                names.append(path.stem)
        found[lang] = tuple(names)
    return found


def _known(lang: str, name: str) -> str:
    if lang not in LANGUAGES or name not in overridable()[lang]:
        raise NotFound("not_found", "There is no such message.")
    return f"{lang}/{name}.txt"


def default_text(lang: str, name: str) -> str:
    """The standard text of a message, as shipped."""
    return (TEMPLATES / _known(lang, name)).read_text(encoding="utf-8").rstrip("\n")


@cache
def variables(lang: str, name: str) -> tuple[str, ...]:
    """The values a message is rendered with (what its standard text uses), sorted; ``lang`` is always there."""
    source = default_text(lang, name)
    used = meta.find_undeclared_variables(environment().parse(source)) | {"lang"}
    if "_hint.txt" in source:
        used.add("hint")  # the dialog's hint line, passed to every template that includes it
    return tuple(sorted(used))


_SAMPLE_START = "2026-12-01T09:30:00+07:00"
_SAMPLES: dict[str, Any] = {
    "name": "Siti",
    "code": "K7MX2PQA",
    "old_code": "Q4TR8WNE",
    "examination": "Dental check-up",
    "doctor": "drg. Sari Lestari",
    "branch": "Klinik Sehat Kemang",
    "start": _SAMPLE_START,
    "old_start": "2026-11-30T14:00:00+07:00",
    "opens_at": "2026-12-01T08:00:00+07:00",
    "eta": "2026-12-01T10:15:00+07:00",
    "day": "2026-12-01",
    "hours": 24,
    "minutes": 10,
    "within_days": 14,
    "link": "https://klinik.example/c/sample-link",
    "phone": "+6281234567890",
    "token": "A-012",
    "position": 2,
    "ahead": 2,
    "rating": 5,
    "reason": "The doctor is away that week",
    "wanted": "15:00",
    "why": "too_late",
    "purpose": "cancel",
    "already": False,
    "more": True,
    "several": False,
    "several_days": False,
    "hint": None,
    "visits": [
        {"start": _SAMPLE_START, "examination": "Dental check-up", "doctor": "drg. Sari Lestari",
         "branch": "Klinik Sehat Kemang", "code": "K7MX2PQA"},
    ],
}  # fmt: skip
#: Where one name means something else in one message.
_SAMPLES_FOR: dict[str, dict[str, Any]] = {
    "hint_offer_staff": {"reason": "not_understood"},
    # The clinic's cancel reason code (its patient-facing words are in the template) and the booking form.
    "cancelled_by_clinic": {"reason": "doctor_unavailable", "link": "https://klinik.example/book"},
}


def sample_values(lang: str, name: str) -> dict[str, Any]:
    """Believable values for every variable of a message (for previews and for checking an override)."""
    specific = _SAMPLES_FOR.get(name, {})
    return {v: specific.get(v, _SAMPLES.get(v, "…")) for v in variables(lang, name) if v != "lang"}


@lru_cache(maxsize=512)
def _compiled(text: str) -> Template:
    """A clinic text compiled once (the settings pages preview every message on one page)."""
    return _clinic_environment().from_string(text)


@lru_cache(maxsize=512)
def _used(text: str) -> frozenset[str]:
    return frozenset(meta.find_undeclared_variables(_clinic_environment().parse(text)))


def _render_text(lang: str, text: str, values: Mapping[str, Any]) -> str:
    return _compiled(text).render(lang=lang, **values).strip()


def check_override(lang: str, name: str, text: str) -> str:
    """The clinic's text for a message, checked: it compiles, uses only the message's variables and renders with
    sample values. Returns it normalised (line ends, trailing space); raises :class:`Invalid` saying what is wrong.
    """
    _known(lang, name)
    text = "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")).strip()
    if not text:
        raise Invalid("empty_message", "The message is empty. To go back to the standard text, use Reset to default.")
    if len(text) > MAX_OVERRIDE:
        raise Invalid("too_long", f"The message is {len(text)} characters long; at most {MAX_OVERRIDE} fit.")
    try:
        used = _used(text)
    except TemplateSyntaxError as exc:
        line = f"Line {exc.lineno}: " if exc.lineno else ""
        raise Invalid(
            "invalid_template", f"{line}{exc.message or exc}. Check the {{{{ }}}} and {{% %}} marks."
        ) from None
    allowed = set(variables(lang, name))
    unknown = sorted(used - allowed)
    if unknown:
        offered = ", ".join(f"{{{{ {v} }}}}" for v in sorted(allowed - {"lang", "hint"})) or "none"
        raise Invalid(
            "unknown_variable",
            f"This message has no value {', '.join(f'{{{{ {v} }}}}' for v in unknown)}. You can use: {offered}.",
        )
    try:
        rendered = _render_text(lang, text, sample_values(lang, name))
    except Exception as exc:  # any failure of the clinic's text is a refusal, shown to the editor
        raise Invalid("invalid_template", f"The message cannot be shown with sample values: {exc}") from None
    if not rendered:
        raise Invalid("empty_message", "With sample values the message comes out empty.")
    if len(rendered) > MAX_TEXT:
        raise Invalid("too_long", f"With sample values the message is longer than {MAX_TEXT} characters.")
    return text


def override_warnings(lang: str, name: str, text: str) -> list[str]:
    """What the clinic's text leaves out that the standard one gives the patient (advice, not a refusal)."""
    standard = default_text(lang, name)
    env = environment()
    try:
        used = meta.find_undeclared_variables(env.parse(text))
    except TemplateSyntaxError:
        return []
    wanted = meta.find_undeclared_variables(env.parse(standard)) - {"lang"}
    warnings = [f"The standard text shows {{{{ {v} }}}}; yours does not." for v in sorted(wanted - used)]
    if "_hint.txt" in standard and "_hint.txt" not in text:
        warnings.append(
            'The standard text begins with {% include lang ~ "/_hint.txt" %}, the line that tells a patient why '
            "their answer was not understood; without it they will not see it."
        )
    return warnings


def preview(lang: str, name: str, text: str | None = None) -> str:
    """The message rendered with sample values: ``text`` (checked first), else its standard text."""
    if text is None:
        text = default_text(lang, name)
    return _render_text(lang, check_override(lang, name, text), sample_values(lang, name))


def use_overrides(stored: Any) -> None:
    """Take the clinic's overrides (the setting's value) as this process's texts; anything malformed is ignored."""
    texts: dict[str, str] = {}
    for lang, names in stored.items() if isinstance(stored, Mapping) else ():
        if lang not in LANGUAGES or not isinstance(names, Mapping):
            continue
        for name, text in names.items():
            if isinstance(text, str) and text.strip() and name in overridable()[lang]:
                texts[f"{lang}/{name}.txt"] = text
    if texts != _OVERRIDES.texts:
        _OVERRIDES.texts = texts
        _OVERRIDES.version += 1
    _OVERRIDES.loaded_at = clock.monotonic()


def forget_overrides() -> None:
    """Read the overrides again before the next render batch (after this process changed them)."""
    _OVERRIDES.loaded_at = None


async def refresh_overrides(db: Db, *, max_age: float = OVERRIDES_TTL) -> None:
    """Before rendering a batch of messages: re-read the clinic's overrides if this process's copy is older than
    ``max_age`` seconds (one small query at most every few seconds; nothing at all in between)."""
    loaded_at = _OVERRIDES.loaded_at
    if loaded_at is not None and clock.monotonic() - loaded_at < max_age:
        return
    use_overrides(await clinic_queries.get_setting(db, OVERRIDES_SETTING, {}))


def render(lang: str, name: str, /, **values: Any) -> str:
    """``templates/messages/<lang>/<name>.txt`` with ``values``; unknown languages fall back to English.

    The clinic's own text is used where it has one (see :func:`refresh_overrides`); if that ever fails to render,
    the standard text is used and the failure logged.
    """
    lang = _language(lang)
    path = f"{lang}/{name}.txt"
    if _OVERRIDES.texts:
        try:
            return _clinic_environment().get_template(path).render(lang=lang, **values).strip()
        except Exception:
            log.exception("the clinic's text for %s failed; sending the standard text", path)
    template = environment().get_template(path)
    return template.render(lang=lang, **values).strip()


def label(lang: str, key: str, /, *, sheet: str = "_buttons", **values: Any) -> str:
    """A button label: the macro ``key`` of ``<lang>/<sheet>.txt`` (the shared ``_buttons.txt`` unless named)."""
    lang = _language(lang)
    module = environment().get_template(f"{lang}/{sheet}.txt").make_module({"lang": lang})
    return str(getattr(module, key)(**values)).strip()


def render_reply(lang: str, reply: Reply) -> tuple[str, tuple[Button, ...]]:
    """A dialog reply as text and buttons (every dialog template may show a hint, so ``hint`` defaults to None)."""
    text = render(lang, reply.template, **{"hint": None, **reply.vars})
    buttons = tuple(Button(label(lang, b.label, **b.vars), b.data) for b in reply.buttons)
    return text, buttons
