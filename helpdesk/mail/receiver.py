"""The SMTP receiver that ``serve`` starts on 127.0.0.1 (aiosmtpd, in the app's own loop)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from helpdesk.mail.inbound import InboundProcessor

log = logging.getLogger(__name__)
# A customer's mail with a few phone photos; larger messages are refused at SMTP time.
MAX_MESSAGE_BYTES = 40 * 1024 * 1024


class _Handler:
    def __init__(self, processor: InboundProcessor) -> None:
        self.processor = processor

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw: Any = envelope.original_content or envelope.content
        try:
            await self.processor.receive(
                bytes(raw),
                envelope_from=envelope.mail_from,
                envelope_to=list(envelope.rcpt_tos),
            )
        except Exception:
            # Not stored: the sending MTA keeps the message and tries again.
            log.exception("could not store an inbound message")
            return "451 4.3.0 Temporary failure, please try again later"
        return "250 2.0.0 Message accepted"


async def start_receiver(processor: InboundProcessor, host: str, port: int) -> asyncio.Server:
    """Listen for SMTP on ``host:port``; close the returned server to stop."""
    loop = asyncio.get_running_loop()
    handler = _Handler(processor)
    return await loop.create_server(
        lambda: SMTP(handler, data_size_limit=MAX_MESSAGE_BYTES, enable_SMTPUTF8=True),
        host=host,
        port=port,
    )
