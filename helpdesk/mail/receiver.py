"""The SMTP receiver that ``serve`` starts on 127.0.0.1 (aiosmtpd, in the app's own loop).

Mail over the size limit is refused: the limit is announced in EHLO (``SIZE``), a ``MAIL
FROM ... SIZE=`` over it gets ``552`` at once, and data past it is discarded as it arrives
(memory stays bounded) and answered ``552`` at the end of DATA; nothing is stored. Accepted
mail is stored raw, then parsed and processed off the event loop (``InboundProcessor``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from helpdesk.mail.inbound import InboundProcessor

log = logging.getLogger(__name__)
# A customer's mail with a few phone photos (the default of HELPDESK_INBOUND_MAX_MAIL_MB).
MAX_MESSAGE_BYTES = 30 * 1024 * 1024


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


async def start_receiver(
    processor: InboundProcessor, host: str, port: int, *, max_bytes: int = MAX_MESSAGE_BYTES
) -> asyncio.Server:
    """Listen for SMTP on ``host:port``; close the returned server to stop.

    Mail larger than ``max_bytes`` is answered ``552`` and not stored.
    """
    loop = asyncio.get_running_loop()
    handler = _Handler(processor)
    return await loop.create_server(
        lambda: SMTP(handler, data_size_limit=max_bytes, enable_SMTPUTF8=True),
        host=host,
        port=port,
    )
