"""The examination catalog (what the clinic offers, where, by whom, when, at what price) and the branch and doctor
lists the inbox needs.

An examination is never deleted: sessions, invoices and coupons point at it, so "delete" sets ``active = false``.
Edits replace whole lists (branches, doctors, windows). Every create, edit and delete leaves an audit row naming
the fields that changed, with their old and new values.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from booking_core.db.engine import Db
from booking_core.db.queries import catalog as queries
from booking_core.db.tables import Branch, Examination, ExaminationWindow
from booking_core.domain.actors import Actor
from booking_core.domain.commission import CommissionRule
from booking_core.domain.money import (
    NegativeAmountError,
    PrecisionError,
    check_precision,
    minor_units,
    quantize,
)
from booking_core.services import audit
from booking_core.services.errors import Conflict, Invalid, NotFound

__all__ = [
    "BranchView",
    "Commission",
    "DoctorView",
    "ExaminationDraft",
    "ExaminationView",
    "WeeklyWindow",
    "check_amount",
    "create_examination",
    "delete_examination",
    "get_examination",
    "list_branches",
    "list_doctors",
    "list_examinations",
    "update_examination",
]

#: The largest amount a NUMERIC(14, 2) money column holds, rounded down to a readable bound.
MAX_AMOUNT = Decimal("999999999999")
CODE_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9_.-]{0,39}$")
MIN_DURATION, MAX_DURATION = 5, 720
_PERCENT_PLACES = Decimal("0.01")


# --- values in and out


@dataclass(frozen=True)
class Commission:
    """A commission rule as entered: ``percent`` (0..100 % of the line) or ``fixed`` (an amount per unit)."""

    kind: Literal["percent", "fixed"] = "percent"
    value: Decimal = Decimal("0")


@dataclass(frozen=True)
class WeeklyWindow:
    """A weekly window in the branch's wall time (weekday 0 = Monday)."""

    weekday: int
    starts: time
    ends: time


@dataclass(frozen=True)
class ExaminationDraft:
    """Everything an examination is, as staff enter it; a PATCH is this with some fields replaced."""

    code: str
    name: str
    price: Decimal
    currency: str
    duration_min: int
    description: str = ""
    taxable: bool = False
    room_kind: str | None = None
    min_notice_min: int = 60
    horizon_days: int = 60
    buffer_before_min: int = 0
    buffer_after_min: int = 0
    cancel_cutoff_min: int = 120
    keywords: tuple[str, ...] = ()
    branch_ids: tuple[int, ...] = ()
    doctor_ids: tuple[int, ...] = ()
    windows: tuple[WeeklyWindow, ...] = ()
    doctor_commission: Commission = field(default_factory=Commission)
    manager_commission: Commission = field(default_factory=Commission)
    active: bool = True


@dataclass(frozen=True)
class ExaminationView(ExaminationDraft):
    """A stored examination: the draft's fields plus its id and when it was created.

    ``unstaffed_branch_ids``: branches that offer it where none of its doctors works (weekly, or on an upcoming
    date): patients are offered it there and find no time. Adding such a branch is refused; these are older ones, or
    left so when a doctor stopped attending, and the settings flag them.
    """

    id: int = 0
    created_at: datetime | None = None
    unstaffed_branch_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class BranchView:
    id: int
    code: str
    name: str
    tz: str
    currency: str
    tax_rate: Decimal


@dataclass(frozen=True)
class DoctorView:
    id: int
    name: str
    specialty: str
    branch_ids: tuple[int, ...]


# Draft fields stored in other tables or as two columns each; the rest map one-to-one onto examinations columns.
_NOT_COLUMNS = ("branch_ids", "doctor_ids", "windows", "doctor_commission", "manager_commission")
_COLUMN_FIELDS = tuple(f.name for f in dataclasses.fields(ExaminationDraft) if f.name not in _NOT_COLUMNS)


# --- branches and doctors


async def list_branches(db: Db, *, actor: Actor) -> list[BranchView]:
    """Active branches; staff tied to one branch see only theirs."""
    scoped = actor.branch_id if actor.kind == "staff" else None
    return [_branch_view(b) for b in await queries.list_branches(db, branch_id=scoped)]


def _branch_view(branch: Branch) -> BranchView:
    return BranchView(branch.id, branch.code, branch.name, branch.tz, branch.currency, branch.tax_rate)


async def list_doctors(
    db: Db, *, actor: Actor, branch_id: int | None = None, today: date | None = None
) -> list[DoctorView]:
    """Active doctors with the branches they attend (weekly pattern, upcoming dated attendance and accepted shifts).

    Staff tied to one branch see only the doctors attending it, and only that branch in ``branch_ids``.
    """
    today = today or _recently()
    branch_id = _visible_branch_filter(actor, branch_id)
    doctors = await queries.list_doctors(db, today=today, branch_id=branch_id)
    attended = await queries.doctor_branches(db, [d.id for d in doctors], today=today)
    return [
        DoctorView(
            id=d.id,
            name=d.name,
            specialty=d.specialty,
            branch_ids=tuple(b for b in attended.get(d.id, ()) if actor.can_see_branch(b)),
        )
        for d in doctors
    ]


def _visible_branch_filter(actor: Actor, branch_id: int | None) -> int | None:
    """The branch a list is limited to: the requested one (404 if not visible), or the actor's own."""
    if branch_id is not None:
        _check_branch(actor, branch_id)
        return branch_id
    return actor.branch_id if actor.kind == "staff" else None


def _check_branch(actor: Actor, branch_id: int | None) -> None:
    if not actor.can_see_branch(branch_id):
        raise NotFound("not_found", "There is no such branch.")


# --- examinations: read


async def list_examinations(
    db: Db, *, actor: Actor, branch_id: int | None = None, active: bool | None = None
) -> list[ExaminationView]:
    """Examinations by name, optionally only those offered at ``branch_id`` and/or (in)active ones."""
    branch_id = _visible_branch_filter(actor, branch_id)
    rows = await queries.list_examinations(db, branch_id=branch_id, active=active)
    return await _views(db, rows, actor)


async def get_examination(db: Db, examination_id: int, *, actor: Actor) -> ExaminationView:
    view = await _load(db, examination_id, actor)
    _check_visible(actor, view)
    return _hide_invisible(view, actor)


async def _load(db: Db, examination_id: int, actor: Actor) -> ExaminationView:
    """The examination with all its branches (not yet filtered to what the actor may see)."""
    row = await queries.get_examination(db, examination_id)
    if row is None:
        raise _not_found()
    return (await _views(db, [row], actor, hide_invisible_branches=False))[0]


def _not_found() -> NotFound:
    return NotFound("not_found", "There is no such examination.")


def _check_visible(actor: Actor, view: ExaminationView) -> None:
    """Staff tied to one branch only see examinations offered there."""
    if actor.kind == "staff" and actor.branch_id is not None and actor.branch_id not in view.branch_ids:
        raise _not_found()


def _hide_invisible(view: ExaminationView, actor: Actor) -> ExaminationView:
    return dataclasses.replace(
        view,
        branch_ids=tuple(b for b in view.branch_ids if actor.can_see_branch(b)),
        unstaffed_branch_ids=tuple(b for b in view.unstaffed_branch_ids if actor.can_see_branch(b)),
    )


def _recently() -> date:
    """A day back from UTC: "today" in every branch's zone is on or after it."""
    return (datetime.now(UTC) - timedelta(days=1)).date()


async def _views(
    db: Db, rows: Sequence[Examination], actor: Actor, *, hide_invisible_branches: bool = True
) -> list[ExaminationView]:
    branches, doctors, windows = await queries.examination_links(db, [r.id for r in rows])
    attended = await queries.doctor_branches(db, {d for ids in doctors.values() for d in ids}, today=_recently())
    views = []
    for r in rows:
        staffed = {b for d in doctors.get(r.id, []) for b in attended.get(d, ())}
        view = _view(r, branches.get(r.id, []), doctors.get(r.id, []), windows.get(r.id, []))
        views.append(
            dataclasses.replace(view, unstaffed_branch_ids=tuple(b for b in view.branch_ids if b not in staffed))
        )
    return [_hide_invisible(v, actor) for v in views] if hide_invisible_branches else views


def _view(
    row: Examination, branch_ids: list[int], doctor_ids: list[int], windows: list[ExaminationWindow]
) -> ExaminationView:
    currency = row.currency
    return ExaminationView(
        id=row.id,
        created_at=row.created_at,
        code=row.code,
        name=row.name,
        description=row.description,
        price=quantize(row.price, currency),
        currency=currency,
        duration_min=row.duration_min,
        taxable=row.taxable,
        room_kind=row.room_kind,
        min_notice_min=row.min_notice_min,
        horizon_days=row.horizon_days,
        buffer_before_min=row.buffer_before_min,
        buffer_after_min=row.buffer_after_min,
        cancel_cutoff_min=row.cancel_cutoff_min,
        keywords=tuple(str(k) for k in row.keywords or ()),
        branch_ids=tuple(branch_ids),
        doctor_ids=tuple(doctor_ids),
        windows=tuple(WeeklyWindow(w.weekday, w.starts, w.ends) for w in windows),
        doctor_commission=_stored_commission(row.doctor_commission_kind, row.doctor_commission_value, currency),
        manager_commission=_stored_commission(row.manager_commission_kind, row.manager_commission_value, currency),
        active=row.active,
    )


def _stored_commission(kind: str, value: Decimal, currency: str) -> Commission:
    if kind == "fixed":
        return Commission("fixed", quantize(value, currency))
    return Commission("percent", value.quantize(_PERCENT_PLACES))


# --- examinations: write


async def create_examination(db: Db, draft: ExaminationDraft, *, actor: Actor) -> ExaminationView:
    """Add an examination to the catalog (owner/admin); 409 ``duplicate_code`` when the code is taken."""
    draft = await _validated(db, draft, actor=actor)
    try:
        new_id = await queries.insert_examination(db, _columns(draft))
    except queries.DuplicateCode:
        raise _duplicate(draft.code) from None
    await queries.replace_branches(db, new_id, draft.branch_ids)
    await queries.replace_doctors(db, new_id, draft.doctor_ids)
    await queries.replace_windows(db, new_id, [(w.weekday, w.starts, w.ends) for w in draft.windows])
    audit.record(db, actor, "examination.created", "examination", new_id, {"fields": _jsonable(draft)})
    return _hide_invisible(await _load(db, new_id, actor), actor)


async def update_examination(
    db: Db, examination_id: int, changes: Mapping[str, Any], *, actor: Actor
) -> ExaminationView:
    """Apply a partial update: ``changes`` maps :class:`ExaminationDraft` field names to new values.

    Lists given are replaced whole. The result is validated as a whole (a new currency re-checks the price, the
    fixed commissions and the branches). Nothing changed → nothing written, no audit row.
    """
    unknown = set(changes) - {f.name for f in dataclasses.fields(ExaminationDraft)}
    if unknown:
        raise TypeError(f"unknown examination fields: {sorted(unknown)}")
    row = await queries.get_examination(db, examination_id, for_update=True)
    if row is None:
        raise _not_found()
    current = (await _views(db, [row], actor, hide_invisible_branches=False))[0]
    _check_visible(actor, current)
    draft = _draft_of(current)
    requested = dict(changes)
    if "branch_ids" in requested and actor.kind == "staff" and actor.branch_id is not None:
        # A branch's admin manages their own branch's membership; other branches' stay as they are.
        others = {b for b in draft.branch_ids if not actor.can_see_branch(b)}
        requested["branch_ids"] = tuple(requested["branch_ids"]) + tuple(sorted(others))
    merged = await _validated(db, dataclasses.replace(draft, **requested), actor=actor, kept=set(draft.branch_ids))
    old_data, new_data = _jsonable(draft), _jsonable(merged)
    changed = {k: {"from": old_data[k], "to": new_data[k]} for k in new_data if old_data[k] != new_data[k]}
    if not changed:
        return _hide_invisible(current, actor)
    old_columns, new_columns = _columns(draft), _columns(merged)
    try:
        await queries.update_examination(
            db, examination_id, {k: v for k, v in new_columns.items() if old_columns[k] != v}
        )
    except queries.DuplicateCode:
        raise _duplicate(merged.code) from None
    if merged.branch_ids != draft.branch_ids:
        await queries.replace_branches(db, examination_id, merged.branch_ids)
    if merged.doctor_ids != draft.doctor_ids:
        await queries.replace_doctors(db, examination_id, merged.doctor_ids)
    if merged.windows != draft.windows:
        await queries.replace_windows(db, examination_id, [(w.weekday, w.starts, w.ends) for w in merged.windows])
    audit.record(db, actor, "examination.updated", "examination", examination_id, {"changed": changed})
    return _hide_invisible(await _load(db, examination_id, actor), actor)


async def delete_examination(db: Db, examination_id: int, *, actor: Actor) -> ExaminationView:
    """Soft delete (``active = false``): sessions, invoices and coupons keep pointing at it. Idempotent."""
    row = await queries.get_examination(db, examination_id, for_update=True)
    if row is None:
        raise _not_found()
    current = (await _views(db, [row], actor, hide_invisible_branches=False))[0]
    _check_visible(actor, current)
    if await queries.deactivate_examination(db, examination_id):
        audit.record(
            db, actor, "examination.deleted", "examination", examination_id,
            {"changed": {"active": {"from": True, "to": False}}, "code": current.code},
        )  # fmt: skip
    return _hide_invisible(await _load(db, examination_id, actor), actor)


def _duplicate(code: str) -> Conflict:
    return Conflict("duplicate_code", f"Another examination already uses the code {code!r}.")


def _draft_of(view: ExaminationView) -> ExaminationDraft:
    values = {f.name: getattr(view, f.name) for f in dataclasses.fields(ExaminationDraft)}
    return ExaminationDraft(**values)


def _columns(draft: ExaminationDraft) -> dict[str, Any]:
    """The examinations row for a (validated) draft."""
    values: dict[str, Any] = {name: getattr(draft, name) for name in _COLUMN_FIELDS}
    values["keywords"] = list(draft.keywords)
    values["doctor_commission_kind"] = draft.doctor_commission.kind
    values["doctor_commission_value"] = draft.doctor_commission.value
    values["manager_commission_kind"] = draft.manager_commission.kind
    values["manager_commission_value"] = draft.manager_commission.value
    return values


def _jsonable(draft: ExaminationDraft) -> dict[str, Any]:
    """The draft as JSON values, for audit rows (Decimal as strings, times as HH:MM[:SS])."""

    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, time):
            return value.isoformat()
        if isinstance(value, WeeklyWindow | Commission):
            return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        return value

    return {f.name: plain(getattr(draft, f.name)) for f in dataclasses.fields(ExaminationDraft)}


# --- validation


def check_amount(amount: Decimal, currency: str, *, what: str = "price") -> Decimal:
    """A money input in ``currency``: not negative, no finer than its minor units, within what the column holds.

    Raises :class:`Invalid` ``invalid_amount`` (``unknown_currency`` for a currency we have no rules for).
    Returns the amount quantized to the currency's minor units.
    """
    _check_currency(currency)
    try:
        exact = check_precision(amount, currency, what=what)
    except (PrecisionError, NegativeAmountError, TypeError, ValueError) as exc:
        raise Invalid("invalid_amount", str(exc)) from None
    except ArithmeticError:  # too large for the money context to quantize
        raise Invalid(
            "invalid_amount", f"The {what} {amount} {currency} is larger than the clinic can record."
        ) from None
    if exact > MAX_AMOUNT:
        raise Invalid("invalid_amount", f"The {what} {amount} {currency} is larger than the clinic can record.")
    return exact


def _check_currency(currency: str) -> None:
    try:
        minor_units(currency)
    except ValueError:
        raise Invalid("unknown_currency", f"The currency {currency!r} is not one the clinic can price in.") from None


def _commission(rule: Commission, currency: str, who: str) -> Commission:
    try:
        CommissionRule(rule.kind, rule.value)
    except NegativeAmountError:
        if rule.kind == "fixed":
            raise Invalid("invalid_amount", f"The {who} commission must not be negative.") from None
        raise Invalid("invalid_commission", f"The {who} commission must not be negative.") from None
    except (TypeError, ValueError) as exc:
        raise Invalid("invalid_commission", f"The {who} commission is not valid: {exc}") from None
    if rule.kind == "fixed":
        return Commission("fixed", check_amount(rule.value, currency, what=f"{who} commission"))
    if rule.value != rule.value.quantize(_PERCENT_PLACES):
        raise Invalid("invalid_commission", f"The {who} commission percentage allows at most 2 decimal places.")
    return Commission("percent", rule.value.quantize(_PERCENT_PLACES))


async def _check_staffed(db: Db, added: set[int], doctor_ids: Sequence[int]) -> None:
    """A branch newly offering the examination needs one of its doctors working there (weekly or on a coming date):
    else patients are offered it there and find no time. Branches it already had are flagged, not refused."""
    if not added:
        return
    attended = await queries.doctor_branches(db, doctor_ids, today=_recently())
    unstaffed = sorted(added - {b for d in doctor_ids for b in attended.get(d, ())})
    if unstaffed:
        names = [b.name for b in [await queries.get_branch(db, i) for i in unstaffed] if b is not None]
        raise Invalid(
            "no_doctor_at_branch",
            f"None of this examination's doctors works at {' or '.join(names)}: patients would be offered it there"
            " and find no time. Choose a doctor who attends there (or add their attendance first), or leave the"
            " branch out.",
            details={"branch_ids": unstaffed},
        )


async def _validated(
    db: Db, draft: ExaminationDraft, *, actor: Actor, kept: set[int] | None = None
) -> ExaminationDraft:
    """Check a whole draft against the clinic's rules and normalise it (code upper-case, amounts quantized).

    ``kept``: branch ids the examination already has; only branches newly added must be visible to the actor.
    """
    code = draft.code.strip().upper()
    if not CODE_PATTERN.match(code):
        raise Invalid(
            "invalid_code", "A code is 1 to 40 letters, digits, '-', '_' or '.', starting with one of the first two."
        )
    name = draft.name.strip()
    if not name:
        raise Invalid("invalid_name", "An examination needs a name.")
    currency = draft.currency.strip().upper()
    price = check_amount(draft.price, currency)
    if not MIN_DURATION <= draft.duration_min <= MAX_DURATION:
        raise Invalid("invalid_duration", f"A duration is {MIN_DURATION} to {MAX_DURATION} minutes.")
    if min(draft.min_notice_min, draft.buffer_before_min, draft.buffer_after_min, draft.cancel_cutoff_min) < 0:
        raise Invalid("invalid_examination", "Notice, buffers and cancellation cut-off must not be negative.")
    if draft.horizon_days < 1:
        raise Invalid("invalid_examination", "The booking horizon is at least one day.")
    for window in draft.windows:
        if not 0 <= window.weekday <= 6:
            raise Invalid("invalid_window", "A weekday is 0 (Monday) to 6 (Sunday).")
        if window.starts.tzinfo is not None or window.ends.tzinfo is not None:
            raise Invalid("invalid_window", "Window times are the branch's wall time, without a UTC offset.")
        if not window.starts < window.ends:
            raise Invalid("invalid_window", "A window starts before it ends.")
    doctor_commission = _commission(draft.doctor_commission, currency, "doctor")
    manager_commission = _commission(draft.manager_commission, currency, "manager")
    branch_ids = tuple(sorted(set(draft.branch_ids)))
    for branch_id in set(branch_ids) - (kept or set()):
        _check_branch(actor, branch_id)
    known = await queries.existing_branch_ids(db, branch_ids)
    if set(branch_ids) - known:
        raise NotFound("not_found", "There is no such branch.", details={"branch_ids": sorted(set(branch_ids) - known)})
    for branch in [await queries.get_branch(db, b) for b in branch_ids]:
        if branch is not None and branch.currency != currency:
            raise Invalid(
                "currency_mismatch",
                f"{branch.name} charges in {branch.currency}; this examination is priced in {currency}.",
            )
    doctor_ids = tuple(sorted(set(draft.doctor_ids)))
    missing_doctors = set(doctor_ids) - await queries.existing_doctor_ids(db, doctor_ids)
    if missing_doctors:
        raise NotFound("not_found", "There is no such doctor.", details={"doctor_ids": sorted(missing_doctors)})
    await _check_staffed(db, set(branch_ids) - (kept or set()), doctor_ids)
    keywords = tuple(dict.fromkeys(k.strip() for k in draft.keywords if k.strip()))
    return dataclasses.replace(
        draft,
        code=code,
        name=name,
        description=draft.description.strip(),
        room_kind=(draft.room_kind or "").strip() or None,
        currency=currency,
        price=price,
        keywords=keywords,
        branch_ids=branch_ids,
        doctor_ids=doctor_ids,
        windows=tuple(sorted(set(draft.windows), key=lambda w: (w.weekday, w.starts, w.ends))),
        doctor_commission=doctor_commission,
        manager_commission=manager_commission,
    )
