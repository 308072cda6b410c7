"""The jobs the workers run, by the dotted name RQ stores with each job.

Whoever enqueues a job (a request handler, the sweep, a test) names it here, so nothing outside the workers imports
them to hand them work, and a renamed job function is one line to change (tests/unit/test_architecture.py checks
that every name resolves to a function of the workers).
"""

from __future__ import annotations

#: Send one outbox row (``outbox_id``, optionally its route ``"telegram:<chat>"``).
DELIVER = "workers.jobs.deliver"
#: Let the chatbot answer a batch of inbound messages (their ids).
DIALOG = "workers.jobs.dialog"
#: The safety net: answer messages a gateway never got to, resend what is due, expire holds, rebuild reminders.
SWEEP = "workers.jobs.sweep"
#: Prove the worker path: the database and Redis reached through a worker's loop (tests and the bench use it).
PING = "workers.jobs.ping"
#: Send one reminder (``reminder_id``) at its due time.
SEND_REMINDER = "workers.reminders.send_reminder"

ALL = (DELIVER, DIALOG, SWEEP, PING, SEND_REMINDER)
