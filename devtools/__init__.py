"""What runs beside Frontdesk while it is developed, measured and tested (never in a clinic's deployment).

* ``devtools.fakes``: fake Telegram Bot API and Twilio Messages API servers that the real aiogram and twilio clients
  talk to (``frontdesk run`` starts them when no credentials are set; ``frontdesk fake-apis`` serves them alone).
* ``devtools.harness``: a real PostgreSQL and Redis for a test or bench run (the machine's, else embedded ones).
* ``devtools.builders``: a small, realistic clinic written into a database (branch, rooms, doctors, examinations).
"""
