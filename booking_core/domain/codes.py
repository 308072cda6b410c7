"""Unguessable codes (booking, coupon, staff login) and the masking used on public pages.

Codes are drawn with :mod:`secrets` from an alphabet without look-alike characters (no 0/O, 1/I/L), so a code
read aloud or copied from a phone screen types back correctly. They are stored only as an HMAC with the server
secret: a leaked table does not hand out working codes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata

__all__ = [
    "ALPHABET",
    "BOOKING_CODE_LENGTH",
    "COUPON_CODE_LENGTH",
    "LOGIN_CODE_LENGTH",
    "InvalidCode",
    "codes_equal",
    "hash_code",
    "mask_email",
    "mask_name",
    "mask_phone",
    "new_booking_code",
    "new_coupon_code",
    "new_login_code",
    "normalize_code",
]

#: 31 characters: digits 2-9 and A-Z without I, L and O (log2(31) ≈ 4.95 bits per character).
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_ALPHABET_SET = frozenset(ALPHABET)

#: 8 characters ≈ 39.6 bits: a booking code also needs the booking to exist and is rate-limited where typed.
BOOKING_CODE_LENGTH = 8
#: 13 characters ≈ 64.4 bits (12 would be 59.5, just short of the 60 a coupon should have).
COUPON_CODE_LENGTH = 13
#: 10 characters ≈ 49.5 bits, shown as two groups of five.
LOGIN_CODE_LENGTH = 10

# Separators people type or paste: spaces and every dash a phone keyboard or word processor might produce.
_SEPARATORS = frozenset(" \t\r\n-_\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u00a0")

_MASK_PHONE_DIGIT = "\u2022"  # •


class InvalidCode(ValueError):
    """Text that cannot be a code (characters outside the alphabet, or empty)."""

    code = "invalid_code"


def _draw(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def new_booking_code() -> str:
    """A fresh 8-character booking code, e.g. ``"K7MX2PQA"``."""
    return _draw(BOOKING_CODE_LENGTH)


def new_coupon_code(prefix: str = "BD") -> str:
    """A fresh coupon code: ``prefix`` + ``"-"`` + 13 characters, e.g. ``"BD-9XK2MP4RTQ7WH"``.

    The prefix must itself use the code alphabet so the whole code survives :func:`normalize_code`.
    """
    if not 1 <= len(prefix) <= 6 or not set(prefix) <= _ALPHABET_SET:
        raise ValueError("coupon prefix must be 1 to 6 characters from the code alphabet")
    return f"{prefix}-{_draw(COUPON_CODE_LENGTH)}"


def new_login_code() -> str:
    """A fresh one-time staff login code, two groups of five for typing, e.g. ``"7KQ4M-X2HPA"``."""
    raw = _draw(LOGIN_CODE_LENGTH)
    half = LOGIN_CODE_LENGTH // 2
    return f"{raw[:half]}-{raw[half:]}"


def normalize_code(text: str, *, length: int | None = None) -> str | None:
    """The canonical form of a typed code: uppercase, separators removed.

    Returns ``None`` when anything outside the code alphabet remains (including the excluded look-alikes),
    when nothing remains, or when ``length`` is given and does not match.
    """
    folded = unicodedata.normalize("NFKC", text).upper()
    canonical = "".join(ch for ch in folded if ch not in _SEPARATORS)
    if not canonical or not set(canonical) <= _ALPHABET_SET:
        return None
    if length is not None and len(canonical) != length:
        return None
    return canonical


def hash_code(code: str, *, pepper: str) -> str:
    """HMAC-SHA256 (hex) of the normalized code, keyed with the server secret; what the database stores.

    Raises :class:`InvalidCode` if ``code`` does not normalize, so callers normalize user input first and
    treat ``None`` as "no such code".
    """
    if not pepper:
        raise ValueError("a non-empty server secret is required to hash codes")
    canonical = normalize_code(code)
    if canonical is None:
        raise InvalidCode("not a valid code")
    return hmac.new(pepper.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def codes_equal(a: str, b: str) -> bool:
    """Constant-time comparison of two code hashes (or two already normalized codes)."""
    return hmac.compare_digest(a.encode(), b.encode())


def mask_name(name: str) -> str:
    """Keep each word's first character and star the rest: ``"Siti Rahmawati" -> "S*** R*********"``.

    Works on user-perceived characters, so an emoji with a skin tone or a flag counts as one character.
    """
    return " ".join(_mask_word(word) for word in name.split())


def mask_phone(phone: str) -> str:
    """Keep the country code and the last four digits: ``"+6281234567890" -> "+62 ••• •••• 7890"``.

    The hidden part is always shown as ``••• ••••`` so its length is not revealed. Short numbers keep at most
    half their digits. Without a leading ``+`` there is no known country code and only the tail is kept.
    """
    text = phone.strip()
    digits = "".join(ch for ch in text if ch in "0123456789")
    if not digits:
        return ""
    country = ""
    if text.startswith("+"):
        country = _country_code(digits)
        digits = digits[len(country) :]
    keep = min(4, len(digits) // 2)
    hidden = f"{_MASK_PHONE_DIGIT * 3} {_MASK_PHONE_DIGIT * 4}"
    parts = [f"+{country}"] if country else []
    parts.append(hidden)
    if keep:
        parts.append(digits[-keep:])
    return " ".join(parts)


def mask_email(email: str) -> str:
    """Keep the first character of the mailbox and of each domain label, and the top-level domain.

    ``"siti.r@gmail.com" -> "s*****@g****.com"``.
    """
    local, at, domain = email.strip().rpartition("@")
    if not at or not local or not domain:
        return _mask_word(email.strip())
    labels = domain.split(".")
    masked_domain = ".".join([*(_mask_word(label) for label in labels[:-1]), labels[-1]])
    return f"{_mask_word(local)}@{masked_domain}"


def _mask_word(word: str) -> str:
    clusters = _graphemes(word)
    if not clusters:
        return ""
    return clusters[0] + "*" * (len(clusters) - 1)


_ZWJ = "\u200d"


def _extends(ch: str) -> bool:
    """Whether ``ch`` belongs to the character before it (marks, variation selectors, skin tones, tags)."""
    cp = ord(ch)
    return (
        unicodedata.category(ch) in ("Mn", "Me", "Mc")
        or 0xFE00 <= cp <= 0xFE0F
        or 0xE0100 <= cp <= 0xE01EF
        or 0x1F3FB <= cp <= 0x1F3FF
        or 0xE0020 <= cp <= 0xE007F
    )


def _is_regional_indicator(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _graphemes(text: str) -> list[str]:
    """A small approximation of Unicode grapheme clusters, enough for names: marks, ZWJ emoji, flags."""
    clusters: list[str] = []
    for ch in unicodedata.normalize("NFC", text):
        if clusters:
            last = clusters[-1]
            pairs_flag = _is_regional_indicator(ch) and len(last) == 1 and _is_regional_indicator(last)
            if ch == _ZWJ or _extends(ch) or last.endswith(_ZWJ) or pairs_flag:
                clusters[-1] = last + ch
                continue
        clusters.append(ch)
    return clusters


# E.164 country codes are prefix-free: +1 and +7 are one digit, these are two, every other code is three.
_TWO_DIGIT_COUNTRY_CODES = frozenset(
    {
        *("20", "27", "30", "31", "32", "33", "34", "36", "39"),
        *("40", "41", "43", "44", "45", "46", "47", "48", "49"),
        *("51", "52", "53", "54", "55", "56", "57", "58"),
        *("60", "61", "62", "63", "64", "65", "66"),
        *("81", "82", "84", "86"),
        *("90", "91", "92", "93", "94", "95", "98"),
    }
)


def _country_code(digits: str) -> str:
    if digits[:1] in ("1", "7"):
        return digits[:1]
    if digits[:2] in _TWO_DIGIT_COUNTRY_CODES:
        return digits[:2]
    return digits[:3]
