"""The shared layer under gateway/ and workers/: what both processes use and neither owns.

Settings, the event loop, the channel registry (channel → adapter), rate limits, RQ queues and the names of the
jobs. It imports booking_core and channels; it never imports gateway or workers (import-linter checks it).
"""
