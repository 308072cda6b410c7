"""``python -m devtools.fakes --telegram-port 8081 --twilio-port 8082``."""

from devtools.fakes.cli import main

raise SystemExit(main())
