"""Who is acting: a signed-in staff member, a patient (by link or chat), or the system itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["owner", "admin", "staff", "doctor"]
ROLES: tuple[Role, ...] = ("owner", "admin", "staff", "doctor")
#: Who outranks whom: an owner above admins, admins above front-desk staff and doctors (who are peers).
RANK: dict[str, int] = {"owner": 3, "admin": 2, "staff": 1, "doctor": 1}
#: Who works the front desk: the lead inbox and patients' conversations, bookings, check-in. A doctor sees the queue,
#: the calendar and sessions, not the inbox. The staff app's pages and the API both refuse by this one set.
FRONT_DESK: frozenset[str] = frozenset({"owner", "admin", "staff"})


@dataclass(frozen=True)
class Actor:
    kind: Literal["staff", "patient", "system"]
    id: int | None = None
    name: str = ""
    role: Role | None = None
    branch_id: int | None = None  # None: every branch (owner/admin) or not applicable
    doctor_id: int | None = None

    def can_see_branch(self, branch_id: int | None) -> bool:
        """Staff tied to a branch only see that branch; the rest see all."""
        return self.kind != "staff" or self.branch_id is None or branch_id == self.branch_id


SYSTEM = Actor(kind="system", name="system")
