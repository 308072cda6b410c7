"""The staff JSON API (`/api/v1`). Endpoint modules register on :data:`api` when imported by :mod:`gateway.routes`."""

from gateway.api.registry import Api

api = Api()
