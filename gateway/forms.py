"""What people type into pages, read one way for every page: posted forms and query strings.

Public pages (booking, confirmation, queue) and the staff app keep what a person typed rather than refuse it: text
comes back storable (NULs dropped, lone surrogates replaced, see ``booking_core.domain.text``). A body that is not a
readable form (bytes that are not UTF-8, an unknown charset) is a 400 page, never a 500. The staff JSON API is the
exception: it refuses such text with 422 (``gateway.api.registry``).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from booking_core.domain.text import storable

API_PREFIX = "/api/"


async def posted_form(request: web.Request) -> dict[str, str]:
    """The posted form's text fields (files are ignored), storable; ``HTTPBadRequest`` when it cannot be read."""
    try:
        posted = await request.post()
    except (UnicodeDecodeError, LookupError, ValueError):
        raise web.HTTPBadRequest(reason="The form could not be read.") from None
    return {storable(key): storable(value) for key, value in posted.items() if isinstance(value, str)}


@web.middleware
async def storable_query(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Pages see their query string without NULs (``/inbox?q=%00`` searches for nothing rather than failing)."""
    if "\x00" in request.query_string and not request.path.startswith(API_PREFIX):
        cleaned = [(storable(key), storable(value)) for key, value in request.query.items()]
        request = request.clone(rel_url=request.rel_url.with_query(cleaned))
    return await handler(request)
