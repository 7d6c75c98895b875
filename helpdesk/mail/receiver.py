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

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session

from helpdesk.mail.inbound import InboundProcessor

log = logging.getLogger(__name__)
# A customer's mail with a few phone photos (the default of HELPDESK_INBOUND_MAX_MAIL_MB).
MAX_MESSAGE_BYTES = 30 * 1024 * 1024


_END = b"\r\n.\r\n"
_CHUNK = 256 * 1024


class _Receiver(SMTP):
    """aiosmtpd with DATA read in large chunks instead of line by line.

    aiosmtpd's own DATA loop runs Python code for every line in the event loop: a 30 MB mail
    (400,000 lines) kept it busy for seconds, and the web pages sharing the loop waited.
    Here the end of data, the size limit and dot-unstuffing are found with bytes operations
    on 256 KB chunks; over the limit the data is dropped as it arrives, answered 552.
    """

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        limit = self.data_size_limit
        # A leading CRLF, so a message that is only "." ends like any other.
        buffer = bytearray(b"\r\n")
        dropped = 0  # bytes discarded past the limit
        while True:
            try:
                chunk = await self._reader.read(_CHUNK)
            except asyncio.CancelledError:
                log.info("connection lost during DATA")
                self._writer.close()
                raise
            if not chunk:
                return  # the client went away: nothing stored
            start = max(len(buffer) - len(_END) + 1, 0)
            buffer += chunk
            end = buffer.find(_END, start)
            if end >= 0:
                leftover = bytes(buffer[end + len(_END) :])
                if leftover:  # commands pipelined behind the data: read them next
                    self._reader._buffer[0:0] = leftover  # type: ignore[attr-defined]
                del buffer[end + 2 :]
                break
            if limit and dropped + len(buffer) - 2 > limit:
                dropped += len(buffer) - len(_END)
                del buffer[: -len(_END)]  # keep what may start the end marker
            await asyncio.sleep(0)  # let the web pages have the loop between chunks
        if dropped:
            await self.push("552 Error: Too much mail data")
            self._set_post_data_state()
            return
        content = bytes(buffer).replace(b"\r\n..", b"\r\n.")[2:]
        if limit and len(content) > limit:
            await self.push("552 Error: Too much mail data")
            self._set_post_data_state()
            return
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)


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
        lambda: _Receiver(handler, data_size_limit=max_bytes, enable_SMTPUTF8=True),
        host=host,
        port=port,
    )
