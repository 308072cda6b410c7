"""What the public queue tracker may show of a patient: the clinic chooses, the safe choice is the default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from booking_core.domain.codes import mask_name

__all__ = ["NAME_MODES", "QueuePrivacy", "public_name", "queue_privacy"]

NameMode = Literal["hidden", "initial", "masked", "first_name"]
#: hidden: no name; initial: "S."; masked: "S*** R*********"; first_name: "Siti".
NAME_MODES: tuple[NameMode, ...] = ("hidden", "initial", "masked", "first_name")
#: What an unknown or damaged setting falls back to: the least a patient needs to recognise their own visit.
SAFE_NAME_MODE: NameMode = "initial"


@dataclass(frozen=True)
class QueuePrivacy:
    """The clinic setting ``queue_privacy``: how the name shows, and whether the doctor and the ETA show."""

    show_name: NameMode = SAFE_NAME_MODE
    show_doctor: bool = True
    show_eta: bool = True


def queue_privacy(value: Any) -> QueuePrivacy:
    """Read the stored setting: a missing doctor or ETA choice shows them (they are the clinic's, not the patient's);
    a malformed value shows less, never more than intended."""
    if not isinstance(value, dict):
        return QueuePrivacy()
    mode = value.get("show_name")
    doctor, eta = value.get("show_doctor", True), value.get("show_eta", True)
    return QueuePrivacy(
        show_name=mode if mode in NAME_MODES else SAFE_NAME_MODE,
        show_doctor=doctor is True,  # anything but a plain yes (a damaged value) hides it
        show_eta=eta is True,
    )


def public_name(name: str, mode: NameMode) -> str:
    """The patient's name as the tracker shows it: ``"Siti Rahmawati"`` → ``""``, ``"S."``, masked or ``"Siti"``."""
    words = name.split()
    if not words or mode == "hidden":
        return ""
    if mode == "first_name":
        return words[0]
    if mode == "masked":
        return mask_name(name)
    return f"{mask_name(words[0]).rstrip('*')}."
