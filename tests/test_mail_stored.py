"""``helpdesk.mail.stored``: the raw mail kept without the photos' metadata (issue 7)."""

from __future__ import annotations

import os
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from helpdesk.mail.decode import parse_message
from helpdesk.mail.stored import (
    DROPPED_NOTE,
    CleanImage,
    is_image,
    original_digest,
    without_image_metadata,
)
from tests import imaging
from tests.conftest import SHARED
from tests.helpers import SUPPORT, mail

CORPUS = Path(__file__).parent / "mail_corpus"
PEER = SHARED / "external" / "mail-peer" / "fixtures" / "decode"


def leaves(raw: bytes) -> list[tuple[str, bytes]]:
    message = message_from_bytes(raw, policy=policy.default)
    return [
        (part.get_content_type(), part.get_payload(decode=True))
        for part in message.walk()
        if not part.is_multipart()
    ]


def test_an_image_is_replaced_by_its_cleaned_version() -> None:
    photo, clean = imaging.jpeg(gps=True), imaging.jpeg(color="gray")
    message = mail("hanako@example.jp", SUPPORT, "写真", "傷の写真です")
    message.add_attachment(photo, maintype="image", subtype="heic", filename="IMG_0001.HEIC")
    kept = without_image_metadata(
        message.as_bytes(), {original_digest(photo): CleanImage(clean, "image/jpeg")}
    )
    assert kept is not None
    [(text_type, _), (image_type, data)] = leaves(kept)
    assert (text_type, image_type, data) == ("text/plain", "image/jpeg", clean)
    assert parse_message(kept).attachments[0].filename == "IMG_0001.HEIC"


def test_an_image_not_kept_becomes_a_note_attached_not_text() -> None:
    message = mail("hanako@example.jp", SUPPORT, "写真", "傷の写真です")
    # Sent as an octet stream: an image all the same, by its bytes.
    message.add_attachment(
        imaging.jpeg(gps=True), maintype="application", subtype="octet-stream", filename="a"
    )
    kept = without_image_metadata(message.as_bytes(), {})
    assert kept is not None and b"\xff\xd8\xff" not in kept
    parsed = parse_message(kept)
    assert parsed.text == "傷の写真です"
    [note] = parsed.attachments
    assert note.filename == "a.txt" and note.data.decode() == DROPPED_NOTE


def test_a_message_without_images_is_kept_as_it_is() -> None:
    message = mail("hanako@example.jp", SUPPORT, "質問", "こんにちは")
    message.add_attachment(imaging.PDF, maintype="application", subtype="pdf", filename="x.pdf")
    assert without_image_metadata(message.as_bytes(), {}) is None


@pytest.mark.parametrize(
    ("data", "content_type", "image"),
    [
        (imaging.jpeg(), "application/octet-stream", True),
        (imaging.png(), "", True),
        (imaging.heic(), "application/octet-stream", True),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "", True),
        (b"GIF89a....", "", True),
        (b"anything", "image/x-unknown", True),
        (imaging.PDF, "application/pdf", False),
        (b"hello", "text/plain", False),
    ],
)
def test_what_counts_as_an_image(data: bytes, content_type: str, image: bool) -> None:
    assert is_image(data, content_type) is image


def _fixtures() -> list[Path]:
    found = sorted(CORPUS.glob("*.eml"))
    if PEER.is_dir():
        found += sorted(p for p in PEER.rglob("*") if p.is_file() and p.suffix != ".json")
    elif os.environ.get("CI") == "true":
        raise RuntimeError(f"{PEER} is required in CI")
    return found


@pytest.mark.parametrize("path", _fixtures(), ids=lambda p: p.name)
def test_everything_but_images_reads_the_same_afterwards(path: Path) -> None:
    raw = path.read_bytes()
    try:
        before = parse_message(raw)
    except ValueError:
        pytest.skip("not a mail")
    kept = without_image_metadata(raw, {})
    if kept is None:
        return
    after = parse_message(kept)
    assert (after.subject, after.from_address, after.to, after.message_id, after.text) == (
        before.subject,
        before.from_address,
        before.to,
        before.message_id,
        before.text,
    )
    assert not [a.filename for a in after.attachments if is_image(a.data, a.content_type)]
