"""Posted HTML forms, read one way for every page: the public booking, confirmation and queue forms and the staff app.

A form is what a person typed, so it is kept rather than refused: text fields come back storable (NULs dropped,
lone surrogates replaced, see ``booking_core.domain.text``). A body that is not a readable form (bytes that are not
UTF-8, an unknown charset) is a 400 page, never a 500.
"""

from __future__ import annotations

from aiohttp import web

from booking_core.domain.text import storable


async def posted_form(request: web.Request) -> dict[str, str]:
    """The posted form's text fields (files are ignored), storable; ``HTTPBadRequest`` when it cannot be read."""
    try:
        posted = await request.post()
    except (UnicodeDecodeError, LookupError, ValueError):
        raise web.HTTPBadRequest(reason="The form could not be read.") from None
    return {storable(key): storable(value) for key, value in posted.items() if isinstance(value, str)}
