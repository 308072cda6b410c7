"""``python -m tests.fakes --telegram-port 8081 --twilio-port 8082``."""

from tests.fakes.cli import main

raise SystemExit(main())
