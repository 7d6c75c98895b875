"""Real image files for tests, made with Pillow (and pillow-heif for HEIC)."""

from __future__ import annotations

import io

from PIL import Image


def jpeg(width: int = 640, height: int = 480, *, color: str = "navy", gps: bool = False) -> bytes:
    image = Image.new("RGB", (width, height), color)
    exif = Image.Exif()
    exif[0x010F] = "Apple"  # Make
    exif[0x0112] = 1  # Orientation
    if gps:
        exif[0x8825] = {1: "N", 2: (35.0, 41.0, 22.0), 3: "E", 4: (139.0, 41.0, 30.0)}
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def png(width: int = 300, height: int = 200) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (width, height), (200, 30, 30, 128)).save(buffer, "PNG")
    return buffer.getvalue()


def heic(width: int = 400, height: int = 300) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "teal").save(buffer, "HEIF")
    return buffer.getvalue()


def noisy_jpeg(megabytes: float = 3.0) -> bytes:
    """A JPEG of about ``megabytes``: random pixels do not compress."""
    import os

    side = int((megabytes * 1024 * 1024 / 3 * 1.6) ** 0.5)
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
