"""The `frontdesk` command: the composition root above the gateway, the workers and the development tools.

It is the one module that starts both sides (``frontdesk run`` serves the gateway and starts a worker process), so
it sits above them; gateway/ and workers/ never import each other (import-linter checks it, see pyproject.toml).
"""
