"""A patient books end to end on Telegram and on WhatsApp: real gateway and worker processes, the real aiogram and
twilio clients, the fake provider APIs, the demo clinic. Both bookings land as leads in the one inbox."""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from tests.e2e.conftest import AUTH, SECRET, SENDER, SID, Stack, converse, lead_with_hold

pytestmark = pytest.mark.e2e

_ids = itertools.count(700_000_000)


async def test_a_patient_books_on_telegram_and_another_on_whatsapp_and_staff_see_both_leads(stack: Stack) -> None:
    chat_id = 6_000_000 + secrets.randbelow(10**6)
    phone = f"+62813{secrets.randbelow(10**8):08d}"
    sender = {"id": chat_id, "is_bot": False, "first_name": "Ayu", "language_code": "en"}
    async with aiohttp.ClientSession() as http:

        async def telegram(text: str | None, button: dict[str, str] | None, _: int) -> None:
            update_id = next(_ids)
            if button is not None:
                body: dict[str, Any] = {
                    "update_id": update_id,
                    "callback_query": {
                        "id": str(update_id),
                        "from": sender,
                        "chat_instance": "1",
                        "data": button["data"],
                        "message": {
                            "message_id": update_id,
                            "date": int(datetime.now(UTC).timestamp()),
                            "chat": {"id": chat_id, "type": "private"},
                            "text": "…",
                        },
                    },
                }
            else:
                body = {
                    "update_id": update_id,
                    "message": {
                        "message_id": update_id,
                        "from": sender,
                        "chat": {"id": chat_id, "type": "private"},
                        "date": int(datetime.now(UTC).timestamp()),
                        "text": text,
                    },
                }
            headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
            async with http.post(f"{stack.base}/webhooks/telegram", json=body, headers=headers) as response:
                assert response.status == 200, await response.text()

        async def whatsapp(text: str | None, button: dict[str, str] | None, number: int) -> None:
            form = {
                "MessageSid": f"SM{secrets.token_hex(16)}",
                "AccountSid": SID,
                "From": f"whatsapp:{phone}",
                "To": SENDER,
                "Body": text if text is not None else str(number),
                "ProfileName": "Budi",
                "WaId": phone.lstrip("+"),
                "NumMedia": "0",
            }
            url = f"{stack.base}/webhooks/whatsapp"
            signature = RequestValidator(AUTH).compute_signature(url, form)
            async with http.post(url, data=form, headers={"X-Twilio-Signature": signature}) as response:
                assert response.status == 200, await response.text()

        await converse(stack, str(chat_id), telegram)
        await converse(stack, phone, whatsapp)

    on_telegram = await lead_with_hold(stack, "telegram")
    on_whatsapp = await lead_with_hold(stack, "whatsapp")
    assert on_telegram.contact_phone == "+6281234567890" and on_whatsapp.contact_phone == phone
    # The real clients really reached the providers: inline keyboards on Telegram, numbered options on WhatsApp.
    keyboards = [r.params.get("reply_markup") for r in stack.telegram.sent_messages(chat_id)]
    assert any(k and k.get("inline_keyboard") for k in keyboards)
    bodies = [r.params.get("Body", "") for r in stack.twilio.sent_messages(f"whatsapp:{phone}")]
    assert any("1 = " in body for body in bodies)
