"""Fake Telegram Bot API (aiohttp.web) that the real aiogram client talks to in tests, benches and `make run`.

``POST|GET /bot{token}/{method}`` with a JSON, urlencoded or multipart body answers
``{"ok": true, "result": ...}`` shaped like the real Bot API, so aiogram parses it into its own types. Every
call is recorded; faults and Telegram's published limits (30 messages/s per bot, 1 message/s per chat) can be
switched on. Edits of messages the fake never sent are answered as if it had (tests often edit a message that
came in a crafted Update).
"""

from __future__ import annotations

import json
import re
import secrets
import struct
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web

from devtools.fakes.control import (
    Clock,
    FakeProvider,
    Fault,
    Recorded,
    RecordedFile,
    SlidingWindowLimit,
    control_routes,
    cut_off_middleware,
    not_found_middleware,
    serve,
    whole_seconds,
)

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_CALLBACK_ANSWER_LENGTH = 200
MAX_UPLOAD_BYTES = 50 * 1024 * 1024

# Calls that deliver a message to a chat: the ones Telegram's flood limits are about.
MESSAGE_METHODS = frozenset({"sendMessage", "sendPhoto", "sendDocument"})

# Form fields are strings on the wire; aiogram JSON-encodes everything that is not a str. These are decoded
# back so recorded params read naturally: ``params["chat_id"] == 42``,
# ``params["reply_markup"]["inline_keyboard"]``.
_INT_FIELDS = frozenset(
    {
        "chat_id",
        "message_id",
        "from_chat_id",
        "reply_to_message_id",
        "message_thread_id",
        "user_id",
        "max_connections",
        "cache_time",
        "offset",
        "limit",
        "timeout",
    }
)
_STRING_FIELDS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "inline_message_id",
        "business_connection_id",
        "message_effect_id",
        "url",
        "secret_token",
        "ip_address",
        "photo",
        "document",
        "action",
        "language_code",
    }
)
_BUTTON_ACTIONS = frozenset(
    {
        "callback_data",
        "url",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    }
)
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_INTEGER = re.compile(r"-?\d+")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PHOTO_SIDES = (90, 320, 800, 1280)


class TelegramError(Exception):
    """An error answer of the Bot API: ``{"ok": false, "error_code", "description", "parameters"?}``."""

    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        """The JSON body Telegram answers with."""
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def retry_after_error(retry_after: int) -> TelegramError:
    """The 429 answer, as Telegram words it."""
    return TelegramError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})


def server_error(status: int) -> TelegramError:
    """A 5xx answer such as ``502 Bad Gateway``."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Server Error"
    return TelegramError(status, phrase)


@dataclass(frozen=True, slots=True)
class _Call:
    token: str
    params: dict[str, Any]
    files: dict[str, RecordedFile]


class FakeTelegram(FakeProvider):
    """State of one fake Bot API server: recorded calls, faults, limits, webhooks, message numbering."""

    def __init__(
        self,
        *,
        tokens: Iterable[str] | None = None,
        enforce_limits: bool = False,
        clock: Clock = time.monotonic,
        bot_first_name: str = "Frontdesk Test Bot",
        bot_username: str = "frontdesk_test_bot",
        messages_per_second: int = 30,
        messages_per_chat_per_second: int = 1,
    ) -> None:
        super().__init__(enforce_limits=enforce_limits, clock=clock)
        self.tokens: set[str] | None = set(tokens) if tokens else None
        self.bot_first_name = bot_first_name
        self.bot_username = bot_username
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.commands: dict[str, list[Any]] = {}
        self._last_message_id: dict[tuple[str, int | str], int] = {}
        self._bot_limit = SlidingWindowLimit(messages_per_second)
        self._chat_limit = SlidingWindowLimit(messages_per_chat_per_second)

    @property
    def limits(self) -> dict[str, SlidingWindowLimit]:
        """The flood limits it enforces when asked to: "bot" (per bot token) and "chat" (per bot and chat)."""
        return {"bot": self._bot_limit, "chat": self._chat_limit}

    # --- reading what happened ---

    def sent_messages(self, chat_id: int | str | None = None) -> list[Recorded]:
        """Accepted sendMessage/sendPhoto/sendDocument calls (refused ones are in ``requests`` only)."""
        return [
            entry
            for entry in self.requests
            if entry.method in MESSAGE_METHODS
            and entry.ok
            and (chat_id is None or entry.params.get("chat_id") == chat_id)
        ]

    def webhook(self, token: str) -> dict[str, Any] | None:
        """The webhook set for a bot (``url``, ``secret_token``, ...), or None."""
        return self.webhooks.get(token)

    def reset(self) -> int:
        """Forget recorded calls, the throttled count and the rate-limit windows."""
        self._bot_limit.clear()
        self._chat_limit.clear()
        return super().reset()

    def accepts_token(self, token: str) -> bool:
        """Any token when none are configured, else only the configured ones."""
        return self.tokens is None or token in self.tokens

    # --- answering ---

    async def process(
        self, *, token: str, method: str, params: dict[str, Any], files: dict[str, RecordedFile]
    ) -> tuple[int, dict[str, Any]]:
        """Answer one Bot API call and record it; returns (HTTP status, JSON body)."""
        name = canonical_method(method)
        try:
            result = await self._answer(token, name, _Call(token=token, params=params, files=files))
            status, body = 200, {"ok": True, "result": result}
        except TelegramError as exc:
            status, body = exc.status, exc.body()
        self.record(method=name, token=token, params=params, files=files, status=status, response=body)
        return status, body

    async def _answer(self, token: str, name: str, call: _Call) -> Any:
        if not self.accepts_token(token):
            raise TelegramError(401, "Unauthorized")
        fault = await self.take_fault(name)
        if fault is not None:
            raise _fault_error(fault)
        handler = _METHODS.get(name)
        if handler is None:
            raise TelegramError(404, "Not Found: method not found")
        return handler(self, call)

    def admit_message(self, token: str, chat_id: int | str) -> None:
        """Count a message against the flood limits, or refuse it with 429 when enforcement is on."""
        if not self.enforce_limits:
            return
        now = self.clock()
        chat_key = (token, chat_id)
        wait = max(self._chat_limit.wait_time(chat_key, now), self._bot_limit.wait_time(token, now))
        if wait > 0:
            self.throttled_count += 1
            raise retry_after_error(whole_seconds(wait))
        self._chat_limit.hit(chat_key, now)
        self._bot_limit.hit(token, now)

    def new_message(self, token: str, chat_id: int | str, content: dict[str, Any]) -> dict[str, Any]:
        """A Message from the bot with the next message_id of that chat."""
        key = (token, chat_id)
        message_id = self._last_message_id.get(key, 0) + 1
        self._last_message_id[key] = message_id
        return self.message(token, chat_id, message_id, content)

    def message(self, token: str, chat_id: int | str, message_id: int, content: dict[str, Any]) -> dict[str, Any]:
        """A Message shape aiogram parses."""
        return {
            "message_id": message_id,
            "from": self.bot_user(token, full=False),
            "chat": chat_of(chat_id),
            "date": int(time.time()),
            **content,
        }

    def bot_user(self, token: str, *, full: bool = True) -> dict[str, Any]:
        """The bot's User (what getMe returns)."""
        left = token.split(":", 1)[0]
        user: dict[str, Any] = {
            "id": int(left) if left.isdigit() else zlib.crc32(token.encode()),
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }
        if full:
            user |= {
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
                "can_connect_to_business": False,
                "has_main_web_app": False,
            }
        return user


TELEGRAM_FAKE: web.AppKey[FakeTelegram] = web.AppKey("fake_telegram", FakeTelegram)


def _fault_error(fault: Fault) -> TelegramError:
    if fault.kind == "retry_after":
        return retry_after_error(fault.retry_after)
    return server_error(fault.status)


def chat_of(chat_id: int | str) -> dict[str, Any]:
    """A Chat for an id: positive → private, -100… → supergroup, other negative → group, @name → channel."""
    if isinstance(chat_id, str):
        username = chat_id.removeprefix("@")
        return {
            "id": -1_000_000_000_000 - zlib.crc32(username.encode()),
            "type": "channel",
            "title": username,
            "username": username,
        }
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": "Patient"}
    if chat_id <= -1_000_000_000_000:
        return {"id": chat_id, "type": "supergroup", "title": "Clinic group"}
    return {"id": chat_id, "type": "group", "title": "Clinic group"}


def canonical_method(method: str) -> str:
    """Bot API method names are case-insensitive; record them the way the docs spell them."""
    return _CANONICAL.get(method.lower(), method)


# --- parameter helpers ---


def decode_form_value(key: str, value: str) -> Any:
    """Undo the JSON encoding clients apply to non-string fields of a form body."""
    if key in _STRING_FIELDS:
        return value
    if value in ("true", "false"):
        return value == "true"
    if key in _INT_FIELDS and _INTEGER.fullmatch(value):
        return int(value)
    if value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _chat_id(params: dict[str, Any]) -> int | str:
    value = params.get("chat_id")
    if value is None or value == "":
        raise TelegramError(400, "Bad Request: chat_id is empty")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        if _INTEGER.fullmatch(value):
            return int(value)
        if value.startswith("@") and len(value) > 1:
            return value
    raise TelegramError(400, "Bad Request: chat not found")


def _message_id(params: dict[str, Any]) -> int:
    value = params.get("message_id")
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise TelegramError(400, "Bad Request: message to edit not found")
    return value


def _text(params: dict[str, Any], key: str = "text") -> str:
    value = params.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise TelegramError(400, "Bad Request: message text is empty")
    if len(value) > MAX_TEXT_LENGTH:
        raise TelegramError(400, "Bad Request: message is too long")
    return value


def _caption(params: dict[str, Any]) -> dict[str, Any]:
    caption = params.get("caption")
    if caption is None or caption == "":
        return {}
    caption = str(caption)
    if len(caption) > MAX_CAPTION_LENGTH:
        raise TelegramError(400, "Bad Request: message caption is too long")
    return {"caption": caption}


def _reply_markup(params: dict[str, Any]) -> dict[str, Any]:
    """Validate reply_markup like Telegram does; returns what a Message echoes (inline keyboards only)."""
    markup = params.get("reply_markup")
    if markup is None or markup == "":
        return {}
    if isinstance(markup, str):
        try:
            markup = json.loads(markup)
        except ValueError:
            markup = None
    if not isinstance(markup, dict):
        raise TelegramError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        return {}
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise TelegramError(400, "Bad Request: can't parse inline keyboard markup JSON object")
    for row in rows:
        for button in row:
            _check_inline_button(button)
    return {"reply_markup": {"inline_keyboard": rows}}


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str) or not button["text"]:
        raise TelegramError(400, "Bad Request: can't parse inline keyboard button: Text must be non-empty")
    actions = _BUTTON_ACTIONS.intersection(button)
    if len(actions) != 1:
        raise TelegramError(
            400,
            "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        )
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA_BYTES:
            raise TelegramError(400, "Bad Request: BUTTON_DATA_INVALID")
    if "url" in button:
        url = button["url"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://", "tg://")):
            raise TelegramError(
                400, f"Bad Request: inline keyboard button URL '{url}' is invalid: Unsupported URL protocol"
            )


def _file_ids(prefix: str) -> dict[str, str]:
    return {
        "file_id": f"{prefix}{secrets.token_urlsafe(36)}",
        "file_unique_id": f"AQAD{secrets.token_urlsafe(9)}",
    }


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG or JPEG, read from its header."""
    if data[:8] == _PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:2] != b"\xff\xd8":
        return None
    index = 2
    while index + 9 < len(data):
        if data[index] != 0xFF:
            index += 1
            continue
        marker = data[index + 1]
        if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD8:
            index += 2 if marker != 0xFF else 1
            continue
        (length,) = struct.unpack(">H", data[index + 2 : index + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return int(width), int(height)
        index += 2 + length
    return None


def photo_sizes(upload: RecordedFile | None) -> list[dict[str, Any]]:
    """PhotoSize list as Telegram stores a photo: thumbnails up to 1280 px on the long side."""
    width, height = (image_size(upload.data) if upload else None) or (800, 600)
    size = upload.size if upload else 48_000
    ids = _file_ids("AgACAgIAAxkBAAI")
    sizes: list[dict[str, Any]] = []
    for side in _PHOTO_SIDES:
        scale = min(1.0, side / max(width, height))
        scaled = (max(1, round(width * scale)), max(1, round(height * scale)))
        if sizes and (sizes[-1]["width"], sizes[-1]["height"]) == scaled:
            break
        sizes.append(
            {
                "file_id": f"{ids['file_id']}{side}",
                "file_unique_id": f"{ids['file_unique_id']}{side}",
                "width": scaled[0],
                "height": scaled[1],
                "file_size": max(1, round(size * scale * scale)),
            }
        )
        if scale == 1.0:
            break
    return sizes


def _upload(call: _Call, field: str, what: str) -> RecordedFile | None:
    """The uploaded file for ``field``, None for a file_id/URL, 400 when there is nothing."""
    upload = call.files.get(field)
    if upload is not None:
        return upload
    value = call.params.get(field)
    if isinstance(value, str) and value and not value.startswith("attach://"):
        return None
    raise TelegramError(400, f"Bad Request: there is no {what} in the request")


# --- methods ---

Method = Callable[[FakeTelegram, _Call], Any]


def _get_me(fake: FakeTelegram, call: _Call) -> Any:
    return fake.bot_user(call.token)


def _send_message(fake: FakeTelegram, call: _Call) -> Any:
    chat_id = _chat_id(call.params)
    content = {"text": _text(call.params), **_reply_markup(call.params)}
    fake.admit_message(call.token, chat_id)
    return fake.new_message(call.token, chat_id, content)


def _send_photo(fake: FakeTelegram, call: _Call) -> Any:
    chat_id = _chat_id(call.params)
    upload = _upload(call, "photo", "photo")
    content = {"photo": photo_sizes(upload), **_caption(call.params), **_reply_markup(call.params)}
    fake.admit_message(call.token, chat_id)
    return fake.new_message(call.token, chat_id, content)


def _send_document(fake: FakeTelegram, call: _Call) -> Any:
    chat_id = _chat_id(call.params)
    upload = _upload(call, "document", "document")
    document: dict[str, Any] = _file_ids("BQACAgIAAxkBAAI")
    if upload is not None:
        document |= {
            "file_name": upload.filename or "document",
            "mime_type": upload.content_type,
            "file_size": upload.size,
        }
    content = {"document": document, **_caption(call.params), **_reply_markup(call.params)}
    fake.admit_message(call.token, chat_id)
    return fake.new_message(call.token, chat_id, content)


def _edit_target(call: _Call) -> tuple[int | str, int] | None:
    """Chat and message an edit applies to; None for an inline message."""
    if call.params.get("inline_message_id"):
        return None
    return _chat_id(call.params), _message_id(call.params)


def _edited(fake: FakeTelegram, call: _Call, target: tuple[int | str, int], content: dict[str, Any]) -> Any:
    chat_id, message_id = target
    message = fake.message(call.token, chat_id, message_id, content)
    message["edit_date"] = message["date"]
    return message


def _edit_message_text(fake: FakeTelegram, call: _Call) -> Any:
    text = _text(call.params)
    markup = _reply_markup(call.params)
    target = _edit_target(call)
    if target is None:
        return True
    return _edited(fake, call, target, {"text": text, **markup})


def _edit_message_reply_markup(fake: FakeTelegram, call: _Call) -> Any:
    markup = _reply_markup(call.params)
    target = _edit_target(call)
    if target is None:
        return True
    # The original text is unknown to the fake unless it sent it; a placeholder keeps the Message valid.
    return _edited(fake, call, target, {"text": "…", **markup})


def _answer_callback_query(fake: FakeTelegram, call: _Call) -> Any:
    if not call.params.get("callback_query_id"):
        raise TelegramError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
    text = call.params.get("text")
    if isinstance(text, str) and len(text) > MAX_CALLBACK_ANSWER_LENGTH:
        raise TelegramError(400, "Bad Request: MESSAGE_TOO_LONG")
    return True


def _send_chat_action(fake: FakeTelegram, call: _Call) -> Any:
    _chat_id(call.params)
    if not call.params.get("action"):
        raise TelegramError(400, "Bad Request: wrong parameter action in request")
    return True


def _delete_message(fake: FakeTelegram, call: _Call) -> Any:
    _chat_id(call.params)
    _message_id(call.params)
    return True


def _set_webhook(fake: FakeTelegram, call: _Call) -> Any:
    url = call.params.get("url")
    if not url:
        fake.webhooks.pop(call.token, None)
        return True
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        # The real API insists on HTTPS; the fake also takes http:// so `make run` works on localhost.
        raise TelegramError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
    secret = call.params.get("secret_token")
    if secret is not None and not (isinstance(secret, str) and _SECRET_TOKEN.fullmatch(secret)):
        raise TelegramError(400, "Bad Request: secret token contains unallowed characters")
    fake.webhooks[call.token] = {
        "url": url,
        "secret_token": secret,
        "max_connections": call.params.get("max_connections", 40),
        "allowed_updates": call.params.get("allowed_updates"),
        "has_custom_certificate": "certificate" in call.files,
    }
    return True


def _delete_webhook(fake: FakeTelegram, call: _Call) -> Any:
    fake.webhooks.pop(call.token, None)
    return True


def _get_webhook_info(fake: FakeTelegram, call: _Call) -> Any:
    hook = fake.webhooks.get(call.token)
    if hook is None:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": 0}
    info: dict[str, Any] = {
        "url": hook["url"],
        "has_custom_certificate": hook["has_custom_certificate"],
        "pending_update_count": 0,
        "max_connections": hook["max_connections"],
        "ip_address": "127.0.0.1",
    }
    if hook["allowed_updates"]:
        info["allowed_updates"] = hook["allowed_updates"]
    return info


def _get_updates(fake: FakeTelegram, call: _Call) -> Any:
    if call.token in fake.webhooks:
        raise TelegramError(
            409,
            "Conflict: can't use getUpdates method while webhook is active; "
            "use deleteWebhook to delete the webhook first",
        )
    return []


def _set_my_commands(fake: FakeTelegram, call: _Call) -> Any:
    commands = call.params.get("commands")
    if not isinstance(commands, list):
        raise TelegramError(400, "Bad Request: can't parse commands JSON object")
    fake.commands[call.token] = commands
    return True


def _delete_my_commands(fake: FakeTelegram, call: _Call) -> Any:
    fake.commands.pop(call.token, None)
    return True


def _get_my_commands(fake: FakeTelegram, call: _Call) -> Any:
    return fake.commands.get(call.token, [])


_METHODS: dict[str, Method] = {
    "getMe": _get_me,
    "sendMessage": _send_message,
    "sendPhoto": _send_photo,
    "sendDocument": _send_document,
    "sendChatAction": _send_chat_action,
    "editMessageText": _edit_message_text,
    "editMessageReplyMarkup": _edit_message_reply_markup,
    "deleteMessage": _delete_message,
    "answerCallbackQuery": _answer_callback_query,
    "setWebhook": _set_webhook,
    "deleteWebhook": _delete_webhook,
    "getWebhookInfo": _get_webhook_info,
    "getUpdates": _get_updates,
    "setMyCommands": _set_my_commands,
    "deleteMyCommands": _delete_my_commands,
    "getMyCommands": _get_my_commands,
}
_CANONICAL = {name.lower(): name for name in _METHODS}
SUPPORTED_METHODS = frozenset(_METHODS)


# --- HTTP ---


async def read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, RecordedFile]]:
    """Query string plus JSON/urlencoded/multipart body → (params, files by the field they fill)."""
    params: dict[str, Any] = {key: decode_form_value(key, value) for key, value in request.query.items()}
    files: dict[str, RecordedFile] = {}
    if not request.body_exists:
        return params, files
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError as exc:
            raise TelegramError(400, "Bad Request: can't parse JSON object") from exc
        if not isinstance(body, dict):
            raise TelegramError(400, "Bad Request: can't parse JSON object")
        params.update(body)
        return params, files
    form = await request.post()
    parts: dict[str, RecordedFile] = {}
    for key, value in form.items():
        if isinstance(value, web.FileField):
            parts[key] = RecordedFile.of(
                part=key, filename=value.filename, content_type=value.content_type, data=value.file.read()
            )
        else:
            text = value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")
            params[key] = decode_form_value(key, text)
    # aiogram sends `photo=attach://<part>` plus a part of that name; file it under the field it fills.
    for key, value in params.items():
        if isinstance(value, str) and value.startswith("attach://"):
            part = parts.pop(value.removeprefix("attach://"), None)
            if part is not None:
                files[key] = part
    files.update(parts)
    return params, files


def _call_of(request: web.Request) -> tuple[str, str] | None:
    """(method, token) of a Bot API call; None for the control endpoints."""
    if "method" not in request.match_info:
        return None
    return canonical_method(request.match_info["method"]), request.match_info["token"]


async def _bot_api(request: web.Request) -> web.Response:
    fake = request.app[TELEGRAM_FAKE]
    token = request.match_info["token"]
    method = request.match_info["method"]
    try:
        params, files = await read_params(request)
    except TelegramError as exc:
        fake.record(method=canonical_method(method), token=token, params={}, status=exc.status, response=exc.body())
        return web.json_response(exc.body(), status=exc.status)
    status, body = await fake.process(token=token, method=method, params=params, files=files)
    return web.json_response(body, status=status)


def create_telegram_app(
    *,
    tokens: set[str] | None = None,
    enforce_limits: bool = False,
    clock: Clock = time.monotonic,
    bot_username: str = "frontdesk_test_bot",
    cut_off: bool = False,
) -> web.Application:
    """The fake Bot API as an aiohttp application; its state is ``app[TELEGRAM_FAKE]``.

    ``cut_off``: record calls whose caller went away (serve it with ``serve(..., cut_off=True)``)."""
    fake = FakeTelegram(tokens=tokens, enforce_limits=enforce_limits, clock=clock, bot_username=bot_username)
    app = web.Application(
        client_max_size=MAX_UPLOAD_BYTES,
        middlewares=[not_found_middleware(lambda _: {"ok": False, "error_code": 404, "description": "Not Found"})],
    )
    if cut_off:
        app.middlewares.append(cut_off_middleware(lambda request: request.app[TELEGRAM_FAKE], _call_of))
    app[TELEGRAM_FAKE] = fake
    app.router.add_get("/bot{token}/{method}", _bot_api, allow_head=False)
    app.router.add_post("/bot{token}/{method}", _bot_api)
    app.router.add_routes(control_routes(lambda request: request.app[TELEGRAM_FAKE]))
    return app


@asynccontextmanager
async def running_fake_telegram(
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    tokens: set[str] | None = None,
    enforce_limits: bool = False,
    clock: Clock = time.monotonic,
    bot_username: str = "frontdesk_test_bot",
    cut_off: bool = False,
) -> AsyncIterator[FakeTelegram]:
    """Serve a fake Bot API on ``host:port`` (0: a free port); yields its state with ``base_url`` set.

    ``cut_off``: a call whose caller goes away before the answer is dropped, not done (see ``control.serve``)."""
    app = create_telegram_app(
        tokens=tokens, enforce_limits=enforce_limits, clock=clock, bot_username=bot_username, cut_off=cut_off
    )
    fake = app[TELEGRAM_FAKE]
    async with serve(app, host=host, port=port, cut_off=cut_off) as base_url:
        fake.base_url = base_url
        yield fake
