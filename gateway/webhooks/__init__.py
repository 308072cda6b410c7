"""Provider webhooks, one module per channel, each with a ``setup(app)``."""
