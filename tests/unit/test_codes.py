"""Unguessable codes and the masked fields shown on public pages."""

from __future__ import annotations

import math
import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from booking_core.domain.codes import (
    ALPHABET,
    BOOKING_CODE_LENGTH,
    COUPON_CODE_LENGTH,
    LOGIN_CODE_LENGTH,
    InvalidCode,
    codes_equal,
    hash_code,
    mask_email,
    mask_name,
    mask_phone,
    new_booking_code,
    new_coupon_code,
    new_login_code,
    normalize_code,
)

PEPPER = "test-server-secret"
LOOK_ALIKES = "0O1IL"


# --- alphabet and generation ------------------------------------------------------------------------------


def test_the_alphabet_has_no_look_alikes() -> None:
    assert not set(LOOK_ALIKES) & set(ALPHABET)
    assert len(set(ALPHABET)) == len(ALPHABET) == 31
    assert ALPHABET.isupper()


def test_a_booking_code_is_eight_unambiguous_characters() -> None:
    for _ in range(200):
        code = new_booking_code()
        assert len(code) == BOOKING_CODE_LENGTH == 8
        assert set(code) <= set(ALPHABET)
    assert BOOKING_CODE_LENGTH * math.log2(len(ALPHABET)) > 39


def test_a_coupon_code_has_its_prefix_and_at_least_sixty_bits() -> None:
    for _ in range(200):
        code = new_coupon_code()
        prefix, body = code.split("-")
        assert prefix == "BD"
        assert len(body) == COUPON_CODE_LENGTH
        assert set(body) <= set(ALPHABET)
    assert COUPON_CODE_LENGTH * math.log2(len(ALPHABET)) >= 60


def test_a_coupon_prefix_must_survive_normalizing() -> None:
    assert new_coupon_code("SEHAT").startswith("SEHAT-")
    for bad in ["", "PROMO", "B1", "LEBARAN", "bd"]:  # O and 1 are not in the alphabet; LEBARAN is too long
        with pytest.raises(ValueError, match="prefix"):
            new_coupon_code(bad)


def test_a_login_code_is_two_typeable_groups_of_five() -> None:
    for _ in range(200):
        code = new_login_code()
        assert re.fullmatch(f"[{ALPHABET}]{{5}}-[{ALPHABET}]{{5}}", code)
    assert LOGIN_CODE_LENGTH == 10


@pytest.mark.parametrize("make", [new_booking_code, new_coupon_code, new_login_code])
def test_ten_thousand_codes_are_all_different(make: object) -> None:
    # Birthday bound for 10k draws from 31**8 is about 0.005% collisions: safe for a test, and it catches
    # a generator that repeats or uses a tiny range.
    assert callable(make)
    drawn = {make() for _ in range(10_000)}
    assert len(drawn) == 10_000


def test_every_alphabet_character_turns_up() -> None:
    seen = set("".join(new_booking_code() for _ in range(2_000)))
    assert seen == set(ALPHABET)


# --- normalizing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("k7mx2pqa", "K7MX2PQA"),
        (" K7MX 2PQA ", "K7MX2PQA"),
        ("abcde-fghjk", "ABCDEFGHJK"),
        ("ABCDE – FGHJK", "ABCDEFGHJK"),  # en dash pasted from a message
        ("ＡＢＣＤＥ", "ABCDE"),  # full-width keyboard
        ("bd-9xk2mp4rtq7wh", "BD9XK2MP4RTQ7WH"),
    ],
)
def test_typed_codes_normalize(typed: str, canonical: str) -> None:
    assert normalize_code(typed) == canonical


@pytest.mark.parametrize("typed", ["", "  - ", "K7MX2PQ0", "HELLO", "K7MX2PQ1", "ABC!DEF", "K7MX2PQÄ"])
def test_text_outside_the_alphabet_is_not_a_code(typed: str) -> None:
    assert normalize_code(typed) is None


def test_normalize_can_insist_on_a_length() -> None:
    assert normalize_code("K7MX2PQA", length=BOOKING_CODE_LENGTH) == "K7MX2PQA"
    assert normalize_code("K7MX2PQ", length=BOOKING_CODE_LENGTH) is None
    assert normalize_code(new_login_code(), length=LOGIN_CODE_LENGTH) is not None


@given(st.sampled_from([new_booking_code, new_coupon_code, new_login_code]), st.booleans())
def test_a_generated_code_survives_normalizing_however_it_is_cased(make: object, lower: bool) -> None:
    assert callable(make)
    code = make()
    typed = code.lower() if lower else code
    canonical = normalize_code(typed)
    assert canonical == code.replace("-", "")


# --- hashing ----------------------------------------------------------------------------------------------


def test_the_same_code_typed_differently_hashes_the_same() -> None:
    code = new_login_code()
    stored = hash_code(code, pepper=PEPPER)
    typed = hash_code(f"  {code.lower().replace('-', ' ')} ", pepper=PEPPER)
    assert codes_equal(stored, typed)
    assert re.fullmatch("[0-9a-f]{64}", stored)


def test_a_different_code_or_secret_gives_a_different_hash() -> None:
    stored = hash_code("K7MX2PQA", pepper=PEPPER)
    assert not codes_equal(stored, hash_code("K7MX2PQB", pepper=PEPPER))
    assert not codes_equal(stored, hash_code("K7MX2PQA", pepper="another-secret"))


def test_the_hash_is_keyed_not_a_plain_digest() -> None:
    import hashlib

    assert hash_code("K7MX2PQA", pepper=PEPPER) != hashlib.sha256(b"K7MX2PQA").hexdigest()


def test_hashing_text_that_is_not_a_code_is_refused() -> None:
    with pytest.raises(InvalidCode) as caught:
        hash_code("K0O1", pepper=PEPPER)
    assert caught.value.code == "invalid_code"


def test_hashing_without_a_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        hash_code("K7MX2PQA", pepper="")


def test_codes_equal_compares_exactly() -> None:
    assert codes_equal("abc", "abc")
    assert not codes_equal("abc", "abd")
    assert not codes_equal("abc", "abcd")
    assert not codes_equal("abc", "ABC")
    assert codes_equal("é", "é")  # non-ASCII input does not blow up compare_digest


# --- masking ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("Siti Rahmawati", "S*** R********"),
        ("Budi", "B***"),
        ("  Ni   Luh  Putu ", "N* L** P***"),
        ("Jo", "J*"),
        ("A", "A"),
        ("A. Rahman", "A* R*****"),
        ("", ""),
        ("   ", ""),
        ("Zoë", "Z**"),
        ("Zoe\u0308", "Z**"),  # combining diaeresis is part of the e
        ("Đặng Thị", "Đ*** T**"),
        ("佐藤 花子", "佐* 花*"),
    ],
)
def test_names_keep_the_initial_of_each_word(name: str, masked: str) -> None:
    assert mask_name(name) == masked


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("🌸Ayu", "🌸***"),
        ("Ayu 🌸", "A** 🌸"),
        ("👩🏽‍⚕️ Rina", "👩🏽‍⚕️ R***"),  # woman health worker, skin tone: one character
        ("🇮🇩🇮🇩 Budi", "🇮🇩* B***"),  # two flags are two characters
        ("❤️Sari", "❤️****"),  # heart with variation selector
    ],
)
def test_emoji_in_names_count_as_one_character(name: str, masked: str) -> None:
    assert mask_name(name) == masked


@given(st.text(max_size=40))
def test_a_masked_name_shows_only_the_start_of_each_word(name: str) -> None:
    words = name.split()
    masked = mask_name(name).split(" ") if words else []
    assert len(masked) == len(words)
    for word, shown in zip(words, masked, strict=True):
        visible = shown.rstrip("*")
        assert unicodedata.normalize("NFC", word).startswith(visible)
        assert len(shown) <= len(unicodedata.normalize("NFC", word))


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("+6281234567890", "+62 ••• •••• 7890"),
        ("+62 812-3456-7890", "+62 ••• •••• 7890"),
        ("+14155550123", "+1 ••• •••• 0123"),
        ("+79161234567", "+7 ••• •••• 4567"),
        ("+447911123456", "+44 ••• •••• 3456"),
        ("+97150123456", "+971 ••• •••• 3456"),
        ("081234567890", "••• •••• 7890"),
    ],
)
def test_phones_keep_the_country_code_and_last_four(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


def test_the_hidden_part_does_not_reveal_the_length() -> None:
    assert mask_phone("+6281234567890").split()[1:3] == mask_phone("+628123456789").split()[1:3]


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("+62123456", "+62 ••• •••• 456"),
        ("+62 12", "+62 ••• •••• 2"),
        ("+62", "+62 ••• ••••"),
        ("", ""),
        ("n/a", ""),
    ],
)
def test_short_numbers_keep_at_most_half_their_digits(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("siti.r@gmail.com", "s*****@g****.com"),
        ("budi@klinik.co.id", "b***@k*****.c*.id"),
        ("not-an-email", "n***********"),
        ("@nobody", "@******"),
    ],
)
def test_emails_keep_the_first_letters_and_the_top_level_domain(email: str, masked: str) -> None:
    assert mask_email(email) == masked
