"""Who is acting: a signed-in staff member, a patient (by link or chat), or the system itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["owner", "admin", "staff", "doctor"]
ROLES: tuple[Role, ...] = ("owner", "admin", "staff", "doctor")


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
