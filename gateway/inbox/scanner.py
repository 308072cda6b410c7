"""The front desk's QR scanner, ``/inbox/scanner``: check patients in and redeem Best Deal coupons.

The camera (``Frontdesk.scanQR``) or a typed code posts to ``POST /inbox/scanner``. A check-in QR (``FD:`` and the
booking code, or the booking code typed) checks the visit in at the scanner's branch and gives the day's token; a
coupon code is only checked: the page shows the coupon (what it gives, validity, uses left, its redemptions in the
branch's time) with the owner's visits to put it on, and ``POST /inbox/scanner/redeem`` redeems it on the visit
staff picked; a redemption made by mistake is undone with ``POST /inbox/scanner/undo`` (asked to confirm, with a
reason), or from the visit's invoice with ``POST /inbox/coupon-redemptions/{id}/undo``. Each outcome is a result
the page shows once after the redirect (post/redirect/get; the result rides in a short-lived signed cookie, so a
reload never posts the code again); a coupon's card is read afresh when shown.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from itsdangerous import BadSignature, URLSafeSerializer

from booking_core.db.engine import Db
from booking_core.domain.actors import Actor
from booking_core.domain.codes import BOOKING_CODE_LENGTH, normalize_code
from booking_core.domain.lifecycle import NOT_ACCEPTED_MESSAGE
from booking_core.domain.links import CHECKIN_PREFIX
from booking_core.domain.money import format_money
from booking_core.services import appointments, catalog, coupon_redemptions, coupons, lifecycle, queue_actions
from booking_core.services.catalog import BranchView
from booking_core.services.errors import Invalid, ServiceError
from booking_core.services.queue import QueueTicket
from booking_core.services.queue_actions import CheckInOutcome
from gateway.api.common import transaction
from gateway.inbox.formats import route_id
from gateway.inbox.web import DESK, back, form_of, render, staff_page
from gateway.keys import SESSIONMAKER, SETTINGS

PAGE = "/inbox/scanner"
RESULT_COOKIE = "fd_scan"
MAX_CODE = 200
UNDONE_ON_VISIT = "Undone from the visit's invoice"

#: How each result looks: (style, heading). Styles: ok (green), warn (amber), bad (red).
RESULTS: dict[str, tuple[str, str]] = {
    "checked_in": ("ok", "Checked in"),
    "already_checked_in": ("warn", "Already checked in"),
    "not_accepted": ("warn", "Not accepted yet"),
    "other_branch": ("bad", "Booked at another branch"),
    "cancelled": ("bad", "Visit cancelled"),
    "not_waiting": ("bad", "Already seen"),
    "wrong_day": ("bad", "Not today"),
    "unknown": ("bad", "Unknown code"),
    "coupon_valid": ("ok", "Coupon valid"),
    "coupon_redeemed": ("ok", "Coupon redeemed"),
    "coupon_undone": ("warn", "Redemption undone"),
    "coupon_refused": ("bad", "Coupon not redeemed"),
    "coupon_used": ("bad", "Coupon already used"),
    "coupon_expired": ("bad", "Coupon expired"),
    "coupon_not_yet_valid": ("bad", "Coupon not valid yet"),
    "coupon_void": ("bad", "Coupon voided"),
    "coupon_other_branch": ("bad", "Coupon for another branch"),
}
_EXPLAINED = {
    "not_accepted": f"{NOT_ACCEPTED_MESSAGE} Check the details with the patient, then accept it and check them in.",
    "other_branch": "This visit is booked at another branch. Send the patient there, or change the booking first.",
    "cancelled": "This visit was cancelled. Book a new visit if the patient still wants to be seen.",
    "not_waiting": "This visit is already with the doctor or finished.",
    "wrong_day": "This visit is on another day; patients check in on the day of their visit.",
    "unknown": "This is not a check-in QR or coupon we know. Check the code and try again, or look the patient up "
    "in Appointments.",
}
#: Every field a result may carry (the template reads each; absent ones are None).
_RESULT_FIELDS = ("token", "patient", "doctor", "position", "ahead", "eta", "wait_min", "session_id", "accepted",
                  "message", "code", "coupon_code", "coupon", "discount", "visit")  # fmt: skip
_COUPON_RESULTS = {
    "valid": "coupon_valid",
    "already_redeemed": "coupon_used",
    "expired": "coupon_expired",
    "not_yet_valid": "coupon_not_yet_valid",
    "void": "coupon_void",
    "other_branch": "coupon_other_branch",
    "unknown": "unknown",
}


def _results(request: web.Request) -> URLSafeSerializer:
    return URLSafeSerializer(request.app[SETTINGS].SECRET_KEY, salt="frontdesk.staff.scan-result")


def booking_code_in(text: str) -> str | None:
    """The booking code in a check-in QR (``FD:K7MX2PQA``) or typed on its own; None for anything else."""
    text = text.strip()
    if text.upper().startswith(CHECKIN_PREFIX):
        text = text[len(CHECKIN_PREFIX) :]
    return normalize_code(text, length=BOOKING_CODE_LENGTH)


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() and len(text) < 10 else None


async def _desk(db: Db, actor: Actor, wanted: int | None) -> tuple[list[BranchView], BranchView | None]:
    branches = await catalog.list_branches(db, actor=actor)
    chosen = next((b for b in branches if b.id == wanted), None) or (branches[0] if branches else None)
    return branches, chosen


def _ticket_facts(ticket: QueueTicket, tz: str) -> dict[str, Any]:
    return {
        "token": ticket.token,
        "doctor": ticket.doctor_name,
        "position": ticket.position,
        "ahead": ticket.ahead,
        "eta": ticket.eta.astimezone(ZoneInfo(tz)).strftime("%H:%M"),
        "wait_min": ticket.wait_min,
    }


async def _check_in(db: Db, actor: Actor, code: str, branch: BranchView) -> dict[str, Any]:
    found = await queue_actions.check_in_by_booking_code(db, code, branch.id, actor=actor)
    result: dict[str, Any] = {"kind": found.outcome.value, "code": code}
    if found.session_id is not None and found.outcome is not CheckInOutcome.OTHER_BRANCH:
        detail = await lifecycle.detail(db, found.session_id, actor=actor)
        result |= {"session_id": found.session_id, "patient": detail.patient.name, "doctor": detail.doctor.name}
    if found.ticket is not None:
        result |= _ticket_facts(found.ticket, branch.tz)
    return result


def _coupon_card(check: coupons.CouponCheck, *, can_undo: bool) -> dict[str, Any] | None:
    """The coupon as the desk sees it, every time and date in the branch's zone (babel)."""
    view, tz = check.coupon, check.tz
    if view is None:
        return None
    visits = [
        {
            "id": v.session_id,
            "label": " · ".join(
                [coupons.when(v.starts_at, tz), v.doctor, ", ".join(v.examinations) or "no examination yet"]
                + (["checked in"] if v.checked_in else [])
            ),
            "chosen": v.session_id == check.suggested,
        }
        for v in check.visits
        if not v.has_coupon
    ]
    return {
        "title": view.title,
        "description": view.description,
        "gives": view.gives,
        "owner": view.owner,
        "hint": view.code_hint,
        "paid": format_money(view.price_paid, view.currency),
        "validity": f"{coupons.day(view.valid_from)} to {coupons.day(view.valid_until)}",
        "branch": view.branch_name or "any branch",
        "uses_left": view.uses_left,
        "max_uses": view.max_uses,
        "status": view.status,
        "redemptions": [
            {
                "id": r.id,
                "session_id": r.session_id,
                "at": coupons.when(r.redeemed_at, tz),
                "by": r.redeemed_by or "",
                "visit": coupons.when(r.visit_starts_at, tz) if r.visit_starts_at else "",
                "undone": coupons.when(r.undone_at, tz) if r.undone_at else "",
                "undo_reason": r.undo_reason,
                "can_undo": can_undo and r.standing and r.session_id is not None,
            }
            for r in check.redemptions
        ],
        "visits": visits if check.valid else [],
        "can_redeem": check.valid and bool(visits),
    }


async def _coupon_result(db: Db, actor: Actor, result: dict[str, Any], branch: BranchView | None, secret: str) -> None:
    """Read the coupon of a result afresh (a check changes nothing) and put its card, and for a bare scan its
    verdict, on the result."""
    check = await coupons.validate(
        db, result["coupon_code"], actor=actor, secret=secret, branch_id=branch.id if branch else None
    )
    if result["kind"] == "coupon_check":
        result["kind"] = _COUPON_RESULTS.get(check.reason, "unknown")
        result["message"] = check.message if check.coupon is not None and not check.valid else ""  # the card says it
    result["coupon"] = _coupon_card(check, can_undo=actor.role in DESK)
    if result["coupon"] is not None and result["kind"] == "coupon_valid" and not result["coupon"]["can_redeem"]:
        result["message"] = (
            f"{check.coupon.owner if check.coupon else 'The owner'} has no visit today or coming up here that it "
            "can go on. Book the visit first, then scan the coupon again."
        )


def _answer(request: web.Request, branch_id: int | None, result: dict[str, Any]) -> web.Response:
    """Back to the scanner (303), the result in a short-lived signed cookie for the page to show once."""
    response = web.Response(status=303, headers={"Location": f"{PAGE}?branch={branch_id}" if branch_id else PAGE})
    response.set_cookie(
        RESULT_COOKIE, _results(request).dumps(result), path=PAGE, httponly=True, samesite="Strict", max_age=120
    )
    return response


@staff_page(DESK)
async def scan(request: web.Request, actor: Actor) -> web.StreamResponse:
    """A scanned or typed code: a check-in QR or booking code checks in; anything else is tried as a coupon."""
    form = await form_of(request)
    text = form.get("code", "").strip()[:MAX_CODE]
    if not text:
        raise Invalid("code_required", "Scan a QR code or type the code first.")
    async with transaction(request) as db:
        _branches, branch = await _desk(db, actor, _int(form.get("branch")))
        if branch is None:
            raise Invalid("no_branch", "There is no branch to check patients in at.")
        booking_code = booking_code_in(text)
        if booking_code is not None:
            result = await _check_in(db, actor, booking_code, branch)
        else:
            result = {"kind": "coupon_check", "coupon_code": text}
    return _answer(request, branch.id, result)


@staff_page(DESK)
async def redeem(request: web.Request, actor: Actor) -> web.StreamResponse:
    """The coupon card's button: redeem the checked coupon on the visit staff picked (its invoice gets the line)."""
    form = await form_of(request)
    code = form.get("code", "").strip()[:MAX_CODE]
    session_id = _int(form.get("session_id"))
    if not code or session_id is None:
        raise Invalid("invalid_form", "Pick the visit the coupon is for.")
    result: dict[str, Any] = {"coupon_code": code}
    async with request.app[SESSIONMAKER]() as db:
        _branches, branch = await _desk(db, actor, _int(form.get("branch")))
    if branch is None:
        raise Invalid("no_branch", "There is no branch to redeem coupons at.")
    try:
        async with transaction(request) as db:
            done = await coupon_redemptions.redeem(
                db, code, actor=actor, secret=request.app[SETTINGS].SECRET_KEY, branch_id=branch.id,
                session_id=session_id,
            )  # fmt: skip
            detail = await lifecycle.detail(db, session_id, actor=actor)
    except ServiceError as exc:
        kind = _COUPON_RESULTS.get(exc.code, "coupon_refused")
        return _answer(request, branch.id, result | {"kind": kind, "message": exc.message})
    return _answer(
        request,
        branch.id,
        result
        | {
            "kind": "coupon_redeemed",
            "session_id": session_id,
            "patient": detail.patient.name,
            "visit": coupons.when(detail.session.starts_at, branch.tz),
            "doctor": detail.doctor.name,
            "discount": format_money(done.discount, done.currency),
        },
    )


@staff_page(DESK)
async def undo(request: web.Request, actor: Actor) -> web.StreamResponse:
    """A redemption's "Undo" (after a confirm): its use comes back and its line leaves the draft invoice."""
    form = await form_of(request)
    redemption_id = _int(form.get("redemption_id"))
    code = form.get("code", "").strip()[:MAX_CODE]
    if redemption_id is None or not code:
        raise Invalid("invalid_form", "Scan the coupon again.")
    reason = form.get("reason", "").strip() or "Redeemed by mistake at the desk"
    async with transaction(request) as db:
        _branches, branch = await _desk(db, actor, _int(form.get("branch")))
        await coupon_redemptions.undo_redemption(db, redemption_id, actor=actor, reason=reason, now=datetime.now(UTC))
    return _answer(request, branch.id if branch else None, {"kind": "coupon_undone", "coupon_code": code})


@staff_page(DESK)
async def undo_on_visit(request: web.Request, actor: Actor) -> web.StreamResponse:
    """The visit's invoice's "Undo coupon" (after a confirm): back to the visit, its invoice without the line."""
    form = await form_of(request)
    redemption_id = route_id(request, "redemption_id")
    visit = f"/inbox/sessions/{_int(form.get('session_id')) or ''}#invoice" if form.get("session_id") else None
    async with transaction(request) as db:
        view = await coupon_redemptions.undo_redemption(db, redemption_id, actor=actor, reason=UNDONE_ON_VISIT)
    return back(request, visit, notice=f"Coupon {view.title} undone: its use is back and its line left the invoice.")


@staff_page(DESK)
async def accept_and_check_in(request: web.Request, actor: Actor) -> web.StreamResponse:
    """The "not accepted yet" answer's button: accept the visit (the one accept, audited) and check the patient in."""
    form = await form_of(request)
    session_id = _int(form.get("session_id"))
    if session_id is None:
        raise Invalid("invalid_form", "Scan the code again.")
    async with transaction(request) as db:
        _branches, branch = await _desk(db, actor, _int(form.get("branch")))
        await appointments.accept(db, session_id, actor=actor, via="scanner", send_qr=False)
        ticket = await queue_actions.check_in(db, session_id, actor=actor)
        detail = await lifecycle.detail(db, session_id, actor=actor)
    tz = branch.tz if branch is not None and branch.id == ticket.branch_id else detail.branch.tz
    result = {"kind": "checked_in", "session_id": session_id, "patient": detail.patient.name, "accepted": True}
    return _answer(request, branch.id if branch else None, result | _ticket_facts(ticket, tz))


def _take_result(request: web.Request) -> dict[str, Any] | None:
    raw = request.cookies.get(RESULT_COOKIE)
    if not raw:
        return None
    try:
        value = _results(request).loads(raw)
    except BadSignature:
        return None
    if not isinstance(value, dict) or (value.get("kind") not in RESULTS and value.get("kind") != "coupon_check"):
        return None
    return _styled({key: None for key in _RESULT_FIELDS} | value)


def _styled(result: dict[str, Any]) -> dict[str, Any]:
    style, heading = RESULTS.get(result["kind"], ("warn", ""))
    return {**result, "style": style, "heading": heading, "explained": _EXPLAINED.get(result["kind"], "")}


@staff_page(DESK)
async def scanner_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    result = _take_result(request)
    async with request.app[SESSIONMAKER]() as db:
        branches, branch = await _desk(db, actor, _int(request.query.get("branch")))
        if result is not None and result.get("coupon_code"):
            await _coupon_result(db, actor, result, branch, request.app[SETTINGS].SECRET_KEY)
            result = _styled(result)
    context = {
        "branches": branches,
        "branch": branch,
        "pick_branch": actor.branch_id is None and len(branches) > 1,
        "result": result,
    }
    response = render(request, actor, "inbox/scanner.html", context, title="Scanner")
    if RESULT_COOKIE in request.cookies:
        response.del_cookie(RESULT_COOKIE, path=PAGE)
    return response


def setup(app: web.Application) -> None:
    app.router.add_get(PAGE, scanner_page)
    app.router.add_post(PAGE, scan)
    app.router.add_post(f"{PAGE}/accept", accept_and_check_in)
    app.router.add_post(f"{PAGE}/redeem", redeem)
    app.router.add_post(f"{PAGE}/undo", undo)
    app.router.add_post("/inbox/coupon-redemptions/{redemption_id}/undo", undo_on_visit)
