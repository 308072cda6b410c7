"""The shared layer under gateway/ and workers/: what both processes use and neither owns.

Settings, the event loop, the channel registry (channel → adapter), rate limits, RQ queues and the names of the jobs,
and what the gateway reads of the workers from RQ's records. It may use channels/ and booking_core/ (below it); it
never imports gateway/ or workers/ (import-linter's contracts in pyproject.toml check it).
"""
