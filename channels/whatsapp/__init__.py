"""WhatsApp channel (Twilio): signature check, form → InboundMessage, send via the REST client, status callbacks."""

from channels.whatsapp.adapter import IGNORED_SENDER_CHANNELS, WhatsAppAdapter, verified_form
from channels.whatsapp.status import StatusReport

__all__ = ["IGNORED_SENDER_CHANNELS", "StatusReport", "WhatsAppAdapter", "verified_form"]
