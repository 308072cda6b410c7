"""The website channel: the embeddable chat widget (JS + websocket, replies over Redis pub/sub) and its tokens."""

from channels.webchat.adapter import WebchatAdapter
from channels.webchat.token import VisitorTokens

__all__ = ["VisitorTokens", "WebchatAdapter"]
