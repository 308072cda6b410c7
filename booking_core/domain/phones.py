"""Phone numbers in one form (E.164), so one person on Telegram, WhatsApp and the web is one patient."""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "ID"


def to_e164(raw: str | None, *, region: str = DEFAULT_REGION) -> str | None:
    """``+6281234567890`` for "0812-3456-7890", "+62 812 3456 7890", "whatsapp:+6281234567890"; None if invalid."""
    if not raw:
        return None
    text = raw.strip().removeprefix("whatsapp:").strip()
    if not text or len(text) > 40:
        return None
    if text[0].isdigit() and not text.startswith("0") and len(text) > 9:
        text = "+" + text  # Telegram shares contacts as "6281234567890", without the plus
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
