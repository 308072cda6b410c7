"""The staff web app (``/login``, ``/inbox/...``): server-rendered pages over the same services as the API."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gateway.inbox import (
    appointments,
    calendar,
    events,
    leads,
    login,
    queue_board,
    scanner,
    session_page,
    settings_pages,
)

STATIC = Path(__file__).resolve().parent.parent / "static"

#: Each module adds its pages with ``setup(app)``.
PAGE_MODULES = (login, events, leads, queue_board, scanner, calendar, session_page, appointments, settings_pages)


def setup(app: web.Application) -> None:
    app.router.add_static("/static/", STATIC, append_version=False)
    for module in PAGE_MODULES:
        module.setup(app)
