"""The raw mail we keep, without what photos carry about the sender (issue 7, item 11).

Photos sent by mail keep GPS position, camera serial number and owner's name in their
metadata. The photos attached to tickets are cleaned (``helpdesk.photos``); the raw message
stored in ``inbound_mail.raw`` is rewritten once processed: each image part is replaced by
the cleaned image stored for the ticket, or, when none was kept, by a short note. Every
other part is written back as received.

Pure functions over bytes: no database, no network.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from email import policy
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser
from io import BytesIO

# Written in place of an image part whose cleaned version was not kept.
DROPPED_NOTE = (
    "(この画像は、位置情報などの個人情報を含むおそれがあるため、"
    "受信メールの保存時に取り除きました。)\n"
)
# What image data starts with: an image sent as application/octet-stream is an image too.
_MAGIC = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"II*\x00",  # TIFF (and camera raw formats built on it)
    b"MM\x00*",
)
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"heim", b"heis")


@dataclass(frozen=True, slots=True)
class CleanImage:
    """The cleaned bytes to keep in place of an image, and their type."""

    data: bytes
    content_type: str


class _RawCompat32(policy.Compat32):
    """compat32, with header values kept exactly as received (8-bit bytes included)."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


_POLICY = _RawCompat32(linesep="\r\n")


def original_digest(data: bytes) -> str:
    """The key under which the cleaned version of an attachment's bytes is looked up."""
    return hashlib.sha256(data).hexdigest()


def is_image(data: bytes, content_type: str = "") -> bool:
    """Whether a part holds an image, by its declared type or by its first bytes."""
    if content_type.lower().startswith("image/"):
        return True
    if data.startswith(_MAGIC):
        return True
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return True
    return data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS


def _replace(part: Message, data: bytes, content_type: str) -> None:
    part.set_type(content_type)
    if content_type.startswith("text/"):
        part.set_param("charset", "utf-8")
    del part["Content-Transfer-Encoding"]
    part["Content-Transfer-Encoding"] = "base64"
    part.set_payload(base64.encodebytes(data).decode("ascii"))


def without_image_metadata(raw: bytes, cleaned: Mapping[str, CleanImage]) -> bytes | None:
    """``raw`` with every image part replaced by its cleaned version from ``cleaned`` (keyed
    by ``original_digest`` of the part's bytes) or by ``DROPPED_NOTE``; None when the
    message holds no image (keep ``raw`` as it is)."""
    message = BytesParser(policy=_POLICY).parsebytes(raw)
    changed = False
    for part in message.walk():
        if part.is_multipart() or part.get_content_maintype() in ("text", "message"):
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes) or not is_image(data, part.get_content_type()):
            continue
        clean = cleaned.get(original_digest(data))
        if clean is not None:
            _replace(part, clean.data, clean.content_type)
        else:
            _replace(part, DROPPED_NOTE.encode(), "text/plain")
            # An attachment, so that the note is never read as part of the message's text.
            filename = part.get_filename() or "image"
            del part["Content-Disposition"]
            part.add_header("Content-Disposition", "attachment", filename=f"{filename}.txt")
        changed = True
    if not changed:
        return None
    buffer = BytesIO()
    linesep = "\r\n" if b"\r\n" in raw[:4096] else "\n"
    BytesGenerator(buffer, mangle_from_=False, maxheaderlen=0, policy=_POLICY).flatten(
        message, linesep=linesep
    )
    return buffer.getvalue()
