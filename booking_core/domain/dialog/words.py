"""How the chatbot reads free text: commands, intents, yes/no, names, phone numbers and fuzzy catalogue matches.

English and Indonesian side by side. Commands ("back", "batal") must be the whole message so that an answer that
merely contains the word is never taken for one; intents ("I want to cancel my appointment") may be part of it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from difflib import SequenceMatcher
from typing import TypeVar

from booking_core.domain.phones import to_e164

__all__ = [
    "choose_language",
    "command",
    "intent",
    "language_named",
    "match_names",
    "normalise",
    "phone_e164",
    "valid_name",
    "yes_no",
]

T = TypeVar("T")

#: Whole-message commands (after normalising).
_COMMANDS: dict[str, frozenset[str]] = {
    "back": frozenset({"back", "go back", "previous", "kembali", "balik", "sebelumnya", "mundur"}),
    "cancel": frozenset({"cancel", "batal", "batalkan", "stop", "quit", "exit", "gak jadi", "nggak jadi",
                         "tidak jadi", "ga jadi", "enggak jadi", "nevermind", "never mind"}),
    "menu": frozenset({"menu", "/menu", "/start", "start", "home", "main menu", "mulai", "menu utama"}),
    "greeting": frozenset({"hi", "hello", "hey", "halo", "hallo", "hai", "helo", "pagi", "siang", "sore", "malam",
                           "selamat pagi", "selamat siang", "selamat sore", "selamat malam", "assalamualaikum",
                           "good morning", "good afternoon", "good evening", "permisi", "p"}),
    "help": frozenset({"help", "/help", "?", "bantuan", "tolong", "info", "panduan"}),
    "lang": frozenset({"/lang", "/language", "lang", "language", "bahasa", "ganti bahasa", "change language"}),
    "staff": frozenset({"staff", "admin", "human", "agent", "operator", "cs", "petugas", "staf", "manusia",
                        "talk to staff", "talk to a human", "speak to staff", "bicara dengan petugas",
                        "hubungi petugas", "hubungi admin", "customer service"}),
}  # fmt: skip

#: Intents recognised anywhere in a message at the menu (and as whole messages during a flow).
_INTENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("staff", ("talk to staff", "speak to", "human", "petugas", "admin", "operator", "customer service")),
    ("queue", ("queue", "antrian", "antri", "my turn", "giliran", "nomor urut")),
    ("reschedule", ("reschedule", "re-schedule", "move my", "change my appointment", "ubah jadwal", "ganti jadwal",
                    "pindah jadwal", "jadwal ulang", "undur", "majukan")),
    ("cancel", ("cancel", "batal")),
    ("mine", ("my appointment", "my booking", "appointments", "bookings", "jadwal saya", "janji saya",
              "booking saya", "cek jadwal", "lihat jadwal")),
    ("book", ("book", "appointment", "reserve", "schedule", "daftar", "pesan", "reservasi", "janji", "jadwal",
              "periksa", "konsultasi", "berobat")),
    ("help", ("help", "bantuan")),
)  # fmt: skip

_YES = frozenset({"yes", "y", "ya", "iya", "iyaa", "yup", "yep", "yeah", "ok", "okay", "oke", "okey", "sure",
                  "confirm", "benar", "betul", "setuju", "sip", "boleh", "lanjut", "correct", "ya benar"})  # fmt: skip
_NO = frozenset({"no", "n", "nope", "tidak", "tdk", "enggak", "nggak", "gak", "ga", "engga", "jangan"})
_CHANGE = frozenset({"change", "edit", "ubah", "ganti", "koreksi", "change it", "modify"})

#: Filler words dropped before matching a catalogue name ("I want a dental check-up" → "dental check up").
_FILLER = frozenset({"i", "want", "would", "like", "to", "a", "an", "the", "please", "for", "book", "booking", "need",
                     "saya", "mau", "ingin", "pengen", "pingin", "minta", "tolong", "untuk", "buat", "dong", "ya",
                     "nya", "yang", "di", "ke", "dengan", "sama", "dr", "dr.", "drg", "dokter", "doctor"})  # fmt: skip

_LANGUAGE_WORDS = {
    "en": frozenset({"en", "english", "inggris", "bahasa inggris", "eng"}),
    "id": frozenset({"id", "indonesia", "indonesian", "bahasa indonesia", "bahasa", "indo", "ind"}),
}


def normalise(text: str) -> str:
    """Lower case, accents off, punctuation to spaces (keeps '/' '?' '+' for commands and numbers)."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    plain = re.sub(r"[^\w/?+'.\-]+", " ", plain)
    plain = re.sub(r"(?<!\w)[.'\-]+|[.'\-]+(?!\w)", " ", plain)  # stray punctuation, not "check-up"
    return re.sub(r"\s+", " ", plain).strip()


def command(text: str) -> str | None:
    """ "back", "cancel", "menu", "greeting", "help", "lang" or "staff" when the whole message is that command."""
    said = normalise(text)
    return next((name for name, words in _COMMANDS.items() if said in words), None)


def intent(text: str) -> str | None:
    """What the patient wants at the menu ("book", "mine", "cancel", "reschedule", "queue", "staff", "help")."""
    said = f" {normalise(text)} "
    for name, phrases in _INTENTS:
        if any(re.search(rf"(?<!\w){re.escape(p)}", said) for p in phrases):
            return name
    return None


def yes_no(text: str) -> str | None:
    """ "yes", "no" or "change" for a confirmation answer."""
    said = normalise(text)
    if said in _YES:
        return "yes"
    if said in _NO:
        return "no"
    if said in _CHANGE:
        return "change"
    return None


def choose_language(*candidates: str | None, default: str = "en") -> str:
    """The first candidate that names a language we speak ("id", "id-ID", "in", "en-GB"), else ``default``."""
    for candidate in candidates:
        if not candidate:
            continue
        code = candidate.strip().lower().replace("_", "-").split("-")[0]
        if code == "in":  # the old ISO code for Indonesian, still sent by some phones
            code = "id"
        if code in _LANGUAGE_WORDS:
            return code
    return default if default in _LANGUAGE_WORDS else "en"


def language_named(text: str) -> str | None:
    said = normalise(text)
    return next((code for code, words in _LANGUAGE_WORDS.items() if said in words), None)


def valid_name(text: str) -> str | None:
    """A person's name as typed (trimmed), or None when it does not look like one."""
    name = re.sub(r"\s+", " ", text).strip()
    if not 2 <= len(name) <= 80 or sum(c.isalpha() for c in name) < 2:
        return None
    if sum(c.isdigit() for c in name) > 0 or re.search(r"[<>{}\[\]@#$%^*=_|\\/]", name):
        return None
    return name


def phone_e164(text: str) -> str | None:
    """The phone number in E.164 ("+6281234567890"; Indonesian numbers may start with 0), or None."""
    return to_e164(text)


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[\s\-/]+", normalise(text)) if t and t not in _FILLER]


def _score(query: str, name: str) -> float:
    """How well ``query`` names ``name``: 1 exact, ~0.9 one contains the other, else spelling similarity."""
    wanted, offered = _tokens(query), _tokens(name)
    if not wanted or not offered:
        return 0.0
    if wanted == offered:
        return 1.0
    if set(offered) <= set(wanted):
        return 0.92  # "periksa gigi" names the keyword "gigi"
    if set(wanted) <= set(offered):
        return 0.88  # "dental" names "dental check-up"
    whole = SequenceMatcher(None, " ".join(wanted), " ".join(offered)).ratio()
    # Each word of the query against its best counterpart: survives typos ("dentl chek").
    per_word = sum(max(SequenceMatcher(None, w, o).ratio() for o in offered) for w in wanted) / len(wanted)
    best_word = max(SequenceMatcher(None, w, o).ratio() for w in wanted for o in offered)
    return max(whole, 0.85 * per_word, 0.8 * best_word if best_word >= 0.85 else 0.0)


def match_names(query: str, items: Sequence[T], names: Iterable[Iterable[str]], *, threshold: float = 0.75) -> list[T]:
    """The items whose names (each item has several: name, keywords) match ``query``, best first.

    One clear winner comes back alone; several close ones all come back (the dialog asks which).
    """
    scored = []
    for item, item_names in zip(items, names, strict=True):
        best = max((_score(query, n) for n in item_names), default=0.0)
        if best >= threshold:
            scored.append((best, item))
    scored.sort(key=lambda pair: -pair[0])
    if not scored:
        return []
    top = scored[0][0]
    close = [item for score, item in scored if top - score < 0.05]
    return close
