"""Customers' photos: proven to be images, cleaned of metadata, stored by content.

An upload is decoded with Pillow (and pillow-heif for iPhones' HEIC); its format comes from
the decoded content, never from the file name or the client's content type. The pixels are
re-encoded into a fresh JPEG (or PNG when the image really is transparent) with no EXIF, GPS,
XMP, comments or colour profile, and stored under the SHA-256 of the cleaned bytes, with a
JPEG thumbnail beside it. Nothing the customer sent is ever used as a path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import re
import tempfile
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pillow_heif
from PIL import Image, ImageCms, ImageOps
from starlette.concurrency import run_in_threadpool

# Once, at import: HEIC/HEIF becomes one more format Image.open can decode.
pillow_heif.register_heif_opener()

# Plugins Image.open may try. Anything else (PDF, SVG, GIF, TIFF, EPS...) is never parsed.
# A JPEG with a second picture appended (MPO, common on phones) comes from the JPEG plugin.
_OPEN_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")
# Formats whose extra frames are part of one photo (MPO's preview, HEIF's auxiliary images):
# the primary picture is kept. Several frames in PNG or WebP mean an animation: refused.
_PRIMARY_FRAME_FORMATS = frozenset({"MPO", "HEIF"})
# Longest side kept: enough to see a defect, small enough for agents' screens and mails.
MAX_SIDE = 4096
JPEG_QUALITY = 85
# Shown to customers instead of what they sent when nothing usable is left.
DEFAULT_FILENAME = "photo"
MAX_FILENAME_LENGTH = 100
_DIGEST = re.compile(r"[0-9a-f]{64}")
_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png"}
# Stored files are readable by the service's group (backups), never by others.
FILE_MODE = 0o640
DIR_MODE = 0o750


class PhotoError(ValueError):
    """An upload that is not an acceptable photo; ``message`` is Japanese, for the customer."""

    def __init__(self, message: str, *, field_label: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field_label = field_label


@dataclass(frozen=True)
class StoredPhoto:
    """A cleaned photo in the store, with its thumbnail."""

    #: SHA-256 (hex) of the cleaned image bytes: the name it is stored under.
    digest: str
    #: "image/jpeg", or "image/png" for a transparent PNG.
    content_type: str
    width: int
    height: int
    #: Size of the cleaned bytes.
    size: int
    #: SHA-256 (hex) of the JPEG thumbnail, stored the same way.
    thumb_digest: str
    #: The customer's file name, sanitized, with the stored type's extension: for display
    #: only, never a path.
    original_filename: str


def sanitize_filename(filename: str) -> str:
    """The display form of a client's file name: basename only, no control characters.

    Both "/" and "\\" count as separators (browsers on Windows may send full paths); format
    characters such as right-to-left overrides are removed with the control characters; at
    most ``MAX_FILENAME_LENGTH`` characters are kept, the extension preserved when short.
    """
    name = unicodedata.normalize("NFC", str(filename)).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if not unicodedata.category(char).startswith("C"))
    name = name.strip().lstrip(".").strip()
    if len(name) > MAX_FILENAME_LENGTH:
        suffix = PurePosixPath(name).suffix
        if not 1 < len(suffix) <= 10:
            suffix = ""
        name = name[: MAX_FILENAME_LENGTH - len(suffix)].rstrip() + suffix
    return name or DEFAULT_FILENAME


# What may follow the last dot of a file name as its type: "HEIC", "jpeg" (not "傷あり").
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}$")


def display_filename(filename: str, content_type: str) -> str:
    """The sanitized name, its extension telling what is stored: a photo converted from
    HEIC to JPEG is ``IMG_4830.jpg``, not ``IMG_4830.HEIC``. A name already ending in the
    stored type's extension (``.JPG``, ``.jpeg``) is kept as it is."""
    name = sanitize_filename(filename)
    extension = _EXTENSIONS[content_type]
    same = (".jpg", ".jpeg") if extension == ".jpg" else (extension,)
    if name.lower().endswith(same):
        return name
    stem = _EXTENSION.sub("", name) or DEFAULT_FILENAME
    return stem[: MAX_FILENAME_LENGTH - len(extension)] + extension


def _megabytes(size: int) -> str:
    """``size`` in MB as customers read it: "10", "2.5", at least "0.1"."""
    return f"{max(round(size / (1024 * 1024), 1), 0.1):g}"


class PhotoStore:
    """Validates, cleans and stores photos under ``root``, named by content."""

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int = 10 * 1024 * 1024,
        max_pixels: int = 40_000_000,
        thumb_size: int = 320,
    ) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.thumb_size = thumb_size
        self._slots: asyncio.Semaphore | None = None

    # -- processing ------------------------------------------------------------------------

    async def process_async(self, data: bytes, *, filename: str, field_label: str) -> StoredPhoto:
        """``process`` in a worker thread, at most one photo per CPU at a time.

        A 12-megapixel photo takes ~100 MB and ~0.2 s of CPU to clean: running every upload
        of a burst at once only multiplies memory, it does not finish sooner.
        """
        if self._slots is None:
            self._slots = asyncio.Semaphore(os.cpu_count() or 1)
        async with self._slots:
            return await run_in_threadpool(
                self.process, data, filename=filename, field_label=field_label
            )

    def process(self, data: bytes, *, filename: str, field_label: str) -> StoredPhoto:
        """Decode, clean and store an upload; return what was stored.

        Raises ``PhotoError`` (a Japanese message naming ``field_label``) for an empty or
        too large file, anything that is not a still JPEG, PNG, WebP or HEIC image, a corrupt
        or truncated image, and an image with more than ``max_pixels`` pixels.
        """
        label = field_label
        if not data:
            raise PhotoError(
                f"「{label}」のファイルが空です。画像を選び直してください。", field_label=label
            )
        if len(data) > self.max_bytes:
            raise PhotoError(
                f"「{label}」のファイルが大きすぎます。"
                f"{_megabytes(self.max_bytes)}MB以下の画像を選んでください。",
                field_label=label,
            )
        image = self._decode(data, label)
        try:
            cleaned = _clean(image)
        finally:
            image.close()
        content_type = "image/png" if cleaned.mode in ("RGBA", "LA") else "image/jpeg"
        body = _encode(cleaned, content_type)
        thumb = _thumbnail(cleaned, self.thumb_size)
        digest = self._store(body, content_type)
        thumb_digest = self._store(thumb, "image/jpeg")
        return StoredPhoto(
            digest=digest,
            content_type=content_type,
            width=cleaned.width,
            height=cleaned.height,
            size=len(body),
            thumb_digest=thumb_digest,
            original_filename=display_filename(filename, content_type),
        )

    def _decode(self, data: bytes, label: str) -> Image.Image:
        """The fully decoded still image in ``data``; raises ``PhotoError``."""
        not_image = PhotoError(
            f"「{label}」はJPEG・PNG・WebP・HEIC形式の画像を選んでください。", field_label=label
        )
        too_many_pixels = PhotoError(
            f"「{label}」の画像は画素数が大きすぎます"
            f"（約{self.max_pixels // 10_000:,}万画素まで）。"
            "小さくしてから選び直してください。",
            field_label=label,
        )
        broken = PhotoError(
            f"「{label}」の画像を読み込めませんでした。"
            "ファイルが壊れていないか確認して、選び直してください。",
            field_label=label,
        )
        # Pillow's own bomb check warns between MAX_IMAGE_PIXELS and twice that: an error
        # here. catch_warnings is process-wide; if threads interleave, the warning may only be
        # logged, and the size check below still refuses (max_pixels is the tighter limit).
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                image = Image.open(io.BytesIO(data), formats=_OPEN_FORMATS)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise too_many_pixels from None
            except Image.UnidentifiedImageError:
                raise not_image from None
            except (OSError, SyntaxError, ValueError, EOFError):
                raise broken from None
            try:
                width, height = image.size
                if width <= 0 or height <= 0:
                    raise broken
                # Before load(): the header's size is all we have read, nothing is allocated.
                if width * height > self.max_pixels:
                    raise too_many_pixels
                if image.format not in _PRIMARY_FRAME_FORMATS and (
                    getattr(image, "is_animated", False) or getattr(image, "n_frames", 1) > 1
                ):
                    raise PhotoError(
                        f"「{label}」は動かない画像（写真）を選んでください。", field_label=label
                    )
                image.load()
            except PhotoError:
                image.close()
                raise
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                image.close()
                raise too_many_pixels from None
            except (OSError, SyntaxError, ValueError, EOFError, MemoryError):
                image.close()
                raise broken from None
        return image

    # -- storage ---------------------------------------------------------------------------

    def path(self, digest: str) -> Path:
        """Where the bytes of ``digest`` live: ``root/ab/cd/abcd….jpg`` (or ``.png``).

        The path is built from the digest alone. For a digest not stored, the ``.jpg`` path
        (which does not exist) is returned. Raises ``ValueError`` unless ``digest`` is 64
        lowercase hex characters.
        """
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise ValueError(f"not a photo digest: {digest!r}")
        folder = self.root / digest[:2] / digest[2:4]
        png = folder / f"{digest}.png"
        return png if png.exists() else folder / f"{digest}.jpg"

    def open(self, digest: str) -> bytes:
        """The stored bytes of ``digest``.

        Raises ``ValueError`` for a malformed digest, ``KeyError`` for one not stored.
        """
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise KeyError(digest) from None

    def delete(self, digest: str) -> None:
        """Remove ``digest``'s file, if stored. Raises ``ValueError`` for a malformed digest.

        Files are shared by content: callers make sure no other attachment still refers
        to ``digest`` (its thumbnail is deleted separately, by its own digest).
        """
        self.path(digest).unlink(missing_ok=True)

    def _store(self, body: bytes, content_type: str) -> str:
        """Write ``body`` under its digest, atomically; return the digest."""
        digest = hashlib.sha256(body).hexdigest()
        folder = self.root / digest[:2] / digest[2:4]
        target = folder / f"{digest}{_EXTENSIONS[content_type]}"
        if target.exists():
            return digest
        folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                os.fchmod(file.fileno(), FILE_MODE)
                file.write(body)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        return digest


# -- cleaning ----------------------------------------------------------------------------------


_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _to_srgb(image: Image.Image) -> Image.Image:
    """``image`` converted from its embedded colour profile to sRGB, when lcms can.

    A profile that lcms refuses (corrupt, or not matching the image's mode) is only dropped:
    the pixels are then taken as sRGB, as browsers do for untagged images.
    """
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return image
    output_mode = "RGBA" if image.mode == "RGBA" else "RGB"
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=output_mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image
    return converted if converted is not None else image


def _has_transparency(image: Image.Image) -> bool:
    if image.mode not in ("RGBA", "LA"):
        return False
    low, _high = image.getchannel("A").getextrema()
    return bool(low < 255)


def _normalize_mode(image: Image.Image) -> Image.Image:
    """``image`` as RGB or L, or RGBA or LA when it has an alpha channel or transparency."""
    mode = image.mode
    transparent = "transparency" in image.info
    if mode in ("RGBA", "LA"):
        return image
    if mode in ("RGB", "L"):
        return image.convert(f"{mode}A") if transparent else image
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I") or mode == "F":
        # 16-bit (or wider) greyscale: scaled to 8 bits rather than clipped at 255.
        return image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if mode == "La":
        return image.convert("LA")
    if mode in ("P", "PA", "RGBa"):
        return image.convert("RGBA" if transparent or mode != "P" else "RGB")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV


def _flatten(image: Image.Image) -> Image.Image:
    """``image`` without alpha, composited over white (JPEG has no transparency)."""
    if image.mode not in ("RGBA", "LA"):
        return image
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _clean(image: Image.Image) -> Image.Image:
    """A new image with ``image``'s upright, sRGB pixels and no metadata at all."""
    source_format = image.format
    # In place: a 40-megapixel photo is 160 MB decoded, one copy fewer counts.
    ImageOps.exif_transpose(image, in_place=True)
    upright = _normalize_mode(_to_srgb(image))
    # Transparency survives only in a PNG: photos from cameras and WebP/HEIC become JPEG.
    if source_format != "PNG" or not _has_transparency(upright):
        upright = _flatten(upright)
    if max(upright.size) > MAX_SIDE:
        upright.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    # A fresh image: encoders read some metadata (comments, text chunks, profiles) from
    # ``info``; this one has none.
    clean = Image.new(upright.mode, upright.size)
    clean.paste(upright)
    return clean


def _encode(image: Image.Image, content_type: str) -> bytes:
    buffer = io.BytesIO()
    if content_type == "image/png":
        image.save(buffer, "PNG", optimize=True)
    else:
        image.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return buffer.getvalue()


def _thumbnail(image: Image.Image, size: int) -> bytes:
    """A JPEG whose long side is ``size`` (smaller images are not enlarged)."""
    thumb = _flatten(image)
    thumb = thumb.copy() if thumb is image else thumb
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    thumb.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return buffer.getvalue()
