"""Customers' photos: proven to be images, cleaned of metadata, stored by content.

An upload is first *checked* from its header alone (``PhotoStore.inspect``): format, size,
shape and the memory its decoding will take, so that nothing is allocated for a file that
will be refused. It is then decoded with Pillow (and pillow-heif for iPhones' HEIC) while it
holds its share of a memory budget; its format comes from the decoded content, never from
the file name or the client's content type. The pixels are re-encoded into a fresh JPEG (or
PNG when the image really is transparent) with no EXIF, GPS, XMP, comments or colour
profile, and stored under the SHA-256 of the cleaned bytes, with a JPEG thumbnail beside it.
Nothing the customer sent is ever used as a path.

Files nothing refers to any more (uploads of refused or abandoned forms) are deleted by
``PhotoStore.sweep`` once they are older than a grace period.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import ctypes.util
import hashlib
import io
import math
import os
import re
import struct
import tempfile
import time
import unicodedata
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, NamedTuple

import pillow_heif
from PIL import ExifTags, Image, ImageCms, PngImagePlugin
from starlette.concurrency import run_in_threadpool

from helpdesk.files import DIR_MODE, FILE_MODE, private_dir

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "MemoryBudget",
    "PhotoCheck",
    "PhotoError",
    "PhotoStore",
    "StoredPhoto",
    "SweepReport",
    "sanitize_filename",
]

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
# A JPEG is decoded by the codec at 1/2, 1/4 or 1/8 of its size when that still leaves this
# share of MAX_SIDE: a 40-megapixel photo then costs a quarter of the memory and CPU.
_DRAFT_SHARE = 0.9
# Longest side over shortest side. Phones' panoramas stay within 1:10 and long screenshots
# within 1:20; a 1 x 40-million-pixel image only exists to exhaust the resampler's memory.
MAX_ASPECT = 20
JPEG_QUALITY = 85
# Memory that photos being decoded may use at once, by default (HELPDESK_PHOTO_MEMORY_MB):
# two 12-megapixel phone photos (about 105 MB each) at once, or one 24-megapixel iPhone
# HEIC (about 210 MB); the worst photo accepted keeps the server within 300 MB of idle.
DEFAULT_MEMORY_BUDGET = 224 * 1024 * 1024
# Beyond the pixel buffers: the interpreter's objects, codec tables, lcms transforms, the
# thumbnail, encoder buffers. Measured peaks stay below the estimate (tests/test_photo_memory).
_FIXED_OVERHEAD = 12 * 1024 * 1024
# Fitting a large image to MAX_SIDE works on bands of about this many source bytes, so
# that resampling (and expanding a palette) never copies the whole image.
_BAND_BYTES = 4 * 1024 * 1024
# Lanczos' support, in source pixels per output pixel, each side.
_LANCZOS_SUPPORT = 3
# Text chunks in a PNG are never kept; Pillow would decompress up to 64 MB of them at open.
PngImagePlugin.MAX_TEXT_MEMORY = 4 * 1024 * 1024
# Shown to customers instead of what they sent when nothing usable is left.
DEFAULT_FILENAME = "photo"
MAX_FILENAME_LENGTH = 100
_DIGEST = re.compile(r"[0-9a-f]{64}")
_STORED_NAME = re.compile(r"([0-9a-f]{64})\.(?:jpg|png)")
_SHARD = re.compile(r"[0-9a-f]{2}")
_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png"}
# Uploads are written here first, then renamed under their digest (same file system).
_INCOMING = ".incoming"
# The sweep renames a file here before deleting it, then looks once more (see ``sweep``).
_QUARANTINE_PREFIX = ".sweep-"
# A JPEG that must be turned upright is encoded in bands of output rows of about this many
# bytes (see ``_write_turned_jpeg``), small enough to stay in the CPU's caches: 64 rows of
# a 12-megapixel portrait photo (bands of 48 to 128 rows cost the same within 2 %).
_TURN_BAND_BYTES = 768 * 1024
# EXIF orientation -> the transposition that makes the picture upright.
_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        function = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


_MALLOC_TRIM = _find_malloc_trim()


def _give_back_memory() -> None:
    """Return freed pixel buffers to the system.

    glibc keeps what a thread freed in that thread's arena: after photos processed by
    different worker threads, the server holds each one's peak at once (measured: two
    concurrent worst-case photos, processed one after the other by the memory budget,
    still took the server 316 MB over idle). ``malloc_trim`` releases it.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


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


@dataclass(frozen=True)
class PhotoCheck:
    """What the header of an acceptable upload says; nothing has been decoded yet."""

    #: "JPEG", "MPO", "PNG", "WEBP" or "HEIF": from the content, never from the name.
    format: str
    #: Pillow's mode for the decoded pixels ("RGB", "RGBA", "L", "P", "I;16", "CMYK"...).
    mode: str
    width: int
    height: int
    #: The JPEG codec decodes at 1/scale of the size (1 for every other format).
    scale: int
    #: Estimated peak memory, in bytes, of decoding and cleaning it: reserved from the
    #: store's memory budget while it is processed.
    memory: int


@dataclass
class SweepReport:
    """What ``PhotoStore.sweep`` did (or, with ``dry_run``, would do)."""

    dry_run: bool = False
    #: Files deleted (or to delete): no row refers to them and they are past the grace period.
    deleted: list[Path] = field(default_factory=list)
    deleted_bytes: int = 0
    #: Stored files left because a row refers to them.
    referenced: int = 0
    #: Files left because they are newer than the grace period (possibly being attached).
    recent: int = 0
    #: Interrupted uploads (temporary files) removed.
    temporaries: int = 0


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


# -- the memory budget -------------------------------------------------------------------------


class MemoryBudget:
    """An asyncio semaphore counted in bytes: photos reserve their estimate while processed.

    Waiters are served in arrival order, so a large photo is not starved by a stream of
    small ones (a small photo behind a large one waits for it). A reservation larger than
    the whole budget is never granted: callers refuse such photos beforehand.
    """

    def __init__(self, total: int) -> None:
        if total <= 0:
            raise ValueError("a memory budget must be positive")
        self.total = total
        self.in_use = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    @contextlib.asynccontextmanager
    async def reserve(self, amount: int) -> AsyncIterator[None]:
        """Hold ``amount`` bytes of the budget for the ``async with`` block.

        Raises ``ValueError`` for an amount larger than the whole budget.
        """
        amount = max(int(amount), 1)
        if amount > self.total:
            raise ValueError(f"{amount} bytes exceed the memory budget of {self.total}")
        await self._acquire(amount)
        try:
            yield
        finally:
            self.in_use -= amount
            self._wake()

    async def _acquire(self, amount: int) -> None:
        if not self._waiters and self.in_use + amount <= self.total:
            self.in_use += amount
            return
        waiter = asyncio.get_running_loop().create_future()
        entry = (amount, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.in_use -= amount  # granted just as we were cancelled: give it back
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)
            self._wake()
            raise

    def _wake(self) -> None:
        while self._waiters:
            amount, waiter = self._waiters[0]
            if waiter.done():
                self._waiters.popleft()
                continue
            if self.in_use + amount > self.total:
                return
            self._waiters.popleft()
            self.in_use += amount
            waiter.set_result(None)


# -- estimating memory from the header ---------------------------------------------------------


def _pixel_bytes(mode: str) -> int:
    """Bytes per pixel of Pillow's storage for ``mode`` (RGB is stored in 4 bytes)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def _fit(width: int, height: int, side: int) -> tuple[int, int]:
    """``width`` x ``height`` scaled to fit ``side`` x ``side`` (never enlarged)."""
    if max(width, height) <= side:
        return width, height
    if width >= height:
        return side, max(round(height * side / width), 1)
    return max(round(width * side / height), 1), side


def _jpeg_scale(width: int, height: int) -> int:
    """The DCT scaling (1, 2, 4 or 8) to decode a JPEG at, keeping 90 % of MAX_SIDE."""
    long_side = max(width, height)
    for scale in (8, 4, 2):
        if long_side / scale >= MAX_SIDE * _DRAFT_SHARE:
            return scale
    return 1


def _jpeg_coefficient_bytes(data: bytes, width: int, height: int) -> int:
    """The whole-image coefficient buffer libjpeg allocates for this JPEG, in bytes.

    A baseline JPEG whose first scan holds every component is decoded a row of blocks at a
    time (0 here). A progressive, lossless or multi-scan one is first read entirely into
    16-bit DCT coefficients: 2 bytes per sample of every component (at its own sampling),
    whatever scale it is then decoded at. The header is walked up to the first scan; a
    header that cannot be read is costed as four full components (the worst Pillow reads).
    """
    worst = width * height * 4 * 2
    offset, end = 2, len(data)
    components: list[tuple[int, int]] = []
    multiscan = False
    while offset + 4 <= end:
        if data[offset] != 0xFF:
            return worst
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # TEM, RSTn: no length
            offset += 2
            continue
        (length,) = struct.unpack_from(">H", data, offset + 2)
        segment = data[offset + 4 : offset + 2 + length]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn
            multiscan = marker not in (0xC0, 0xC1)  # progressive, lossless, arithmetic
            if len(segment) < 6:
                return worst
            count = segment[5]
            for index in range(count):
                at = 6 + 3 * index
                if at + 2 > len(segment):
                    return worst
                sampling = segment[at + 1]
                components.append((max(sampling >> 4, 1), max(sampling & 0x0F, 1)))
        elif marker == 0xDA:  # SOS: the first scan
            if not components or not segment:
                return worst
            if segment[0] < len(components):  # not interleaved: several scans
                multiscan = True
            break
        offset += 2 + length
    else:
        return worst
    if not multiscan:
        return 0
    h_max = max(h for h, _v in components)
    v_max = max(v for _h, v in components)
    total = 0
    for h, v in components:
        blocks_wide = math.ceil(math.ceil(width * h / h_max) / 8)
        blocks_high = math.ceil(math.ceil(height * v / v_max) / 8)
        # Rows of blocks are allocated in whole MCUs.
        total += (blocks_wide + h) * (blocks_high + v) * 64 * 2
    return total


def _codec_bytes(image: Image.Image, data: bytes, width: int, height: int) -> tuple[int, int]:
    """Memory the decoder takes beyond Pillow's pixel buffer, as (while decoding, kept).

    "Kept" is held by the opened file until it is closed, through the whole cleaning.
    Measured per format (tests/test_photo_memory.py checks the estimates against real runs).
    """
    pixels = width * height
    if image.format in ("JPEG", "MPO"):
        return _jpeg_coefficient_bytes(data, width, height), 0
    if image.format == "WEBP":
        # libwebp's RGBA canvas and the frame it hands over, and the file copy, are kept.
        return 0, 2 * 4 * pixels + len(data)
    if image.format == "HEIF":
        depth = 2 if int(image.info.get("bit_depth") or 8) > 8 else 1
        frames = getattr(image, "n_frames", 1)
        # Y, Cb and Cr planes and the interleaved RGB(A) copy while decoding; with several
        # images in the file, pillow-heif keeps the decoded copy.
        return 4 * depth * pixels, (4 * depth * pixels if frames > 1 else 0) + len(data)
    # PNG: two rows (of up to 16-bit RGBA) and zlib's window.
    return 2 * width * 8 + 256 * 1024, 0


def _band_rows(width: int) -> int:
    """Rows of the source handled at once when fitting a large image to MAX_SIDE."""
    return max(16, _BAND_BYTES // (max(width, 1) * 4))


def _pipeline_bytes(mode: str, width: int, height: int) -> int:
    """Peak of the pixel buffers alive at once while cleaning a decoded ``width`` x ``height``.

    Mirrors ``_clean``: a large image is fitted to MAX_SIDE by ``_fit_in_bands`` (the
    decoded image, the horizontally resized one and one band, then the latter and the
    fitted one); then at most two fitted images (at most 4 bytes per pixel) are alive at
    each step, the one being read and the one being made (a JPEG turned upright needs less:
    ``_write_turned_jpeg`` makes bands of the turned image, never all of it).
    """
    decoded = width * height * _pixel_bytes(mode)
    out_width, out_height = _fit(width, height, MAX_SIDE)
    fitted = out_width * out_height * 4
    if max(width, height) <= MAX_SIDE:
        return max(decoded + fitted, 2 * fitted)
    wide = out_width * height * 4
    bands = 4 * _BAND_BYTES
    return max(decoded + wide + bands, wide + fitted, 2 * fitted)


def _estimate(image: Image.Image, data: bytes, scale: int) -> int:
    """Peak memory to decode and clean ``image`` (opened, not decoded), in bytes."""
    width, height = image.size
    decoding, kept = _codec_bytes(image, data, width, height)
    decoded_width, decoded_height = -(-width // scale), -(-height // scale)
    decoded = decoded_width * decoded_height * _pixel_bytes(image.mode)
    pipeline = _pipeline_bytes(image.mode, decoded_width, decoded_height)
    return kept + max(decoding + decoded, pipeline) + _FIXED_OVERHEAD


# -- the store ---------------------------------------------------------------------------------


class _HashingWriter:
    """A write-only file object that hashes what goes through it (no ``fileno``, so that
    Pillow's encoders write through ``write`` and every byte is hashed)."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()


class PhotoStore:
    """Validates, cleans and stores photos under ``root``, named by content."""

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int = 10 * 1024 * 1024,
        max_pixels: int = 40_000_000,
        thumb_size: int = 320,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        max_aspect: float = MAX_ASPECT,
    ) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.thumb_size = thumb_size
        self.max_aspect = max_aspect
        #: Photos being processed reserve their estimated memory from this budget.
        self.memory = MemoryBudget(memory_budget)

    # -- checking (cheap: the header only) -------------------------------------------------

    def inspect(self, data: bytes, *, field_label: str) -> PhotoCheck:
        """Check an upload from its header alone; nothing is decoded, nothing is stored.

        Costs a few milliseconds and kilobytes at most for any input (a WebP or HEIC
        container is parsed, not decoded), so a caller may run it before its other checks
        (rate limit, CSRF, form validation) and process the photo only when they pass.

        Raises ``PhotoError`` (a Japanese message naming ``field_label``) for an empty or too
        large file, anything that is not a still JPEG, PNG, WebP or HEIC image, a header
        that cannot be read, more than ``max_pixels`` pixels, a shape more elongated than
        ``max_aspect``, and an image whose decoding would need more memory than the whole
        budget.
        """
        image = self._open(data, field_label)
        try:
            return self._check(image, data, field_label)
        finally:
            image.close()

    def _open(self, data: bytes, label: str) -> Image.Image:
        """The opened (not decoded) image in ``data``; raises ``PhotoError``."""
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
        # Pillow's own bomb check warns between MAX_IMAGE_PIXELS and twice that: an error
        # here. catch_warnings is process-wide; if threads interleave, the warning may only
        # be logged, and the size checks in _check still refuse (max_pixels is tighter).
        with warnings.catch_warnings():
            # Pillow warns about damaged metadata (corrupt EXIF): it is dropped anyway.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                return Image.open(io.BytesIO(data), formats=_OPEN_FORMATS)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise self._too_many_pixels(label) from None
            except Image.UnidentifiedImageError:
                raise self._not_image(label) from None
            except (OSError, SyntaxError, ValueError, EOFError, MemoryError, struct.error):
                raise self._broken(label) from None

    def _check(self, image: Image.Image, data: bytes, label: str) -> PhotoCheck:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise self._broken(label)
        if width * height > self.max_pixels:
            raise self._too_many_pixels(label)
        if max(width, height) > self.max_aspect * min(width, height):
            raise PhotoError(
                f"「{label}」の画像は縦横の比率が極端なため受け付けられません"
                f"（長い辺は短い辺の{self.max_aspect:g}倍まで）。"
                "写真を選び直してください。",
                field_label=label,
            )
        try:
            animated = getattr(image, "is_animated", False) or getattr(image, "n_frames", 1) > 1
        except (OSError, SyntaxError, ValueError, EOFError, struct.error):
            raise self._broken(label) from None
        if image.format not in _PRIMARY_FRAME_FORMATS and animated:
            raise PhotoError(
                f"「{label}」は動かない画像（写真）を選んでください。", field_label=label
            )
        scale = _jpeg_scale(width, height) if image.format in ("JPEG", "MPO") else 1
        memory = _estimate(image, data, scale)
        if memory > self.memory.total:
            raise PhotoError(
                f"「{label}」の画像は大きすぎて処理できません。"
                "画素数を減らすか、JPEG形式で保存し直してから選び直してください。",
                field_label=label,
            )
        return PhotoCheck(
            format=str(image.format),
            mode=image.mode,
            width=width,
            height=height,
            scale=scale,
            memory=memory,
        )

    def _not_image(self, label: str) -> PhotoError:
        return PhotoError(
            f"「{label}」はJPEG・PNG・WebP・HEIC形式の画像を選んでください。", field_label=label
        )

    def _too_many_pixels(self, label: str) -> PhotoError:
        return PhotoError(
            f"「{label}」の画像は画素数が大きすぎます"
            f"（約{self.max_pixels // 10_000:,}万画素まで）。"
            "小さくしてから選び直してください。",
            field_label=label,
        )

    def _broken(self, label: str) -> PhotoError:
        return PhotoError(
            f"「{label}」の画像を読み込めませんでした。"
            "ファイルが壊れていないか確認して、選び直してください。",
            field_label=label,
        )

    # -- processing ------------------------------------------------------------------------

    async def process_async(self, data: bytes, *, filename: str, field_label: str) -> StoredPhoto:
        """``process`` in a worker thread, once the photo's memory is reserved.

        The header is checked first (``inspect``); the photo then waits until its estimated
        memory fits in the store's budget, so a burst of uploads is processed a few at a
        time instead of multiplying the server's memory. Raises ``PhotoError``.
        """
        check = await run_in_threadpool(self.inspect, data, field_label=field_label)
        async with self.memory.reserve(check.memory):
            return await run_in_threadpool(
                self.process, data, filename=filename, field_label=field_label
            )

    def process(self, data: bytes, *, filename: str, field_label: str) -> StoredPhoto:
        """Check, decode, clean and store an upload; return what was stored.

        Raises ``PhotoError`` (a Japanese message naming ``field_label``) for everything
        ``inspect`` refuses and for a corrupt or truncated image. Does not wait for the
        memory budget: ``process_async`` does (callers on the event loop use that one).
        """
        label = field_label
        image = self._open(data, label)
        try:
            check = self._check(image, data, label)
            self._decode(image, check, label)
            # From here on ``cleaned`` owns the pixels (it may be ``image`` itself), in the
            # upload's own orientation: ``turn`` makes them upright.
            cleaned, turn = _clean(image, transparent_png=check.format == "PNG")
        except BaseException:
            image.close()
            _give_back_memory()
            raise
        try:
            content_type = "image/png" if cleaned.mode in ("RGBA", "LA") else "image/jpeg"
            if turn is not None and content_type == "image/png":
                cleaned, turn = _replace(cleaned, cleaned.transpose(turn)), None
            digest, size = self._store_image(cleaned, content_type, turn)
            thumb = _thumbnail(cleaned, self.thumb_size, turn)
            width, height = _turned_size(cleaned.size, turn)
        finally:
            cleaned.close()
        thumb_digest, _thumb_size = self._store_image(thumb, "image/jpeg")
        thumb.close()
        _give_back_memory()
        return StoredPhoto(
            digest=digest,
            content_type=content_type,
            width=width,
            height=height,
            size=size,
            thumb_digest=thumb_digest,
            original_filename=display_filename(filename, content_type),
        )

    def _decode(self, image: Image.Image, check: PhotoCheck, label: str) -> None:
        """Decode every pixel of ``image`` (proving it is an image); raises ``PhotoError``."""
        with warnings.catch_warnings():
            # Pillow warns about damaged metadata (corrupt EXIF): it is dropped anyway.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                if check.scale > 1:
                    # DCT scaling in the codec: the whole file is still decoded.
                    image.draft(
                        image.mode, (check.width // check.scale, check.height // check.scale)
                    )
                image.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise self._too_many_pixels(label) from None
            except (OSError, SyntaxError, ValueError, EOFError, MemoryError, struct.error):
                raise self._broken(label) from None

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

    def retain(self, photo: StoredPhoto) -> bool:
        """Mark ``photo`` (and its thumbnail) as just used; return whether both are stored.

        A photo accepted on an earlier try of a form and carried by the form as a token is
        not referenced by any row until the ticket is saved: call this when the token is
        used, so that the sweep's grace period starts again. ``False`` means the files were
        swept (the form sat longer than the grace period): ask for the photo again.
        """
        kept = True
        for digest in (photo.digest, photo.thumb_digest):
            try:
                os.utime(self.path(digest))
            except (FileNotFoundError, ValueError):
                kept = False
        return kept

    def _store_image(
        self, image: Image.Image, content_type: str, turn: Image.Transpose | None = None
    ) -> tuple[str, int]:
        """Encode ``image`` (turned by ``turn``, a JPEG only) straight into a temporary file,
        hashing as it is written, then move it under its digest. Returns the digest and the
        size in bytes."""
        incoming = private_dir(self.root / _INCOMING)
        descriptor, temporary = tempfile.mkstemp(dir=incoming, prefix="upload-", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                os.fchmod(file.fileno(), FILE_MODE)
                writer = _HashingWriter(file)
                _encode(image, content_type, writer, turn)
                file.flush()
                os.fsync(file.fileno())
            digest = writer.hash.hexdigest()
            self._commit(Path(temporary), digest, _EXTENSIONS[content_type])
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        return digest, writer.size

    def _commit(self, temporary: Path, digest: str, extension: str) -> None:
        """Move ``temporary`` to ``digest``'s path, or keep the copy already stored.

        An existing copy has its time refreshed so that the sweep's grace period counts from
        now: a file the sweep has already taken aside (renamed) is not found here, and ours
        takes its place.
        """
        folder = private_dir(self.root / digest[:2] / digest[2:4])
        target = folder / f"{digest}{extension}"
        try:
            os.utime(target)
        except FileNotFoundError:
            os.replace(temporary, target)
        else:
            os.unlink(temporary)

    # -- sweeping --------------------------------------------------------------------------

    def sweep(
        self,
        referenced: Callable[[set[str]], set[str]],
        *,
        grace_seconds: float,
        dry_run: bool = False,
        now: float | None = None,
    ) -> SweepReport:
        """Delete stored files no row refers to and older than ``grace_seconds``.

        ``referenced(digests)`` returns those of ``digests`` that something still refers to
        (an attachment's digest or thumbnail, a queued or dead mail); it is asked once per
        folder, for files past the grace period only. Safe while photos are being attached:

        - A file written or re-uploaded less than ``grace_seconds`` ago is never deleted
          (storing an existing photo again refreshes its time), which covers a ticket that
          has stored its photos but not yet committed.
        - A file is first renamed aside, then its time is looked at once more: if an upload
          refreshed it in between, it is put back. An upload that comes after the rename
          does not find it and stores its own copy.
        - A file some row refers to is never deleted, whichever ticket the row is on.

        Also removes temporary files of interrupted uploads older than the grace period.
        Blocking (file system walk): run it in a thread.
        """
        report = SweepReport(dry_run=dry_run)
        cutoff = (time.time() if now is None else now) - grace_seconds
        report.temporaries = self._sweep_temporaries(cutoff, dry_run=dry_run)
        for shard in self._shards():
            candidates: dict[str, list[Path]] = {}
            for path in self._stored_files(shard):
                try:
                    modified = path.stat().st_mtime
                except FileNotFoundError:
                    continue
                if modified >= cutoff:
                    report.recent += 1
                    continue
                digest = path.name.split(".", 1)[0]
                candidates.setdefault(digest, []).append(path)
            if not candidates:
                continue
            kept = referenced(set(candidates))
            for digest, paths in candidates.items():
                if digest in kept:
                    report.referenced += len(paths)
                    continue
                for path in paths:
                    size = self._remove_if_stale(path, cutoff, dry_run=dry_run)
                    if size is None:
                        report.recent += 1
                    else:
                        report.deleted.append(path)
                        report.deleted_bytes += size
        return report

    def _shards(self) -> Iterator[Path]:
        try:
            entries = sorted(os.scandir(self.root), key=lambda entry: entry.name)
        except FileNotFoundError:
            return
        for entry in entries:
            if _SHARD.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                yield Path(entry.path)

    def _stored_files(self, shard: Path) -> Iterator[Path]:
        """Stored photos under ``shard`` (``ab/cd/<digest>.jpg``); files the sweep took
        aside and never finished with are put back or removed first."""
        for folder in sorted(shard.iterdir()):
            if not _SHARD.fullmatch(folder.name) or not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                if path.name.startswith(_QUARANTINE_PREFIX):
                    self._recover(path)
                    continue
                match = _STORED_NAME.fullmatch(path.name)
                if match and match.group(1)[:4] == shard.name + folder.name:
                    yield path

    def _recover(self, aside: Path) -> None:
        """A file a crashed sweep renamed aside: back in place, unless a copy is there."""
        original = aside.with_name(aside.name[len(_QUARANTINE_PREFIX) :])
        if original.exists():
            aside.unlink(missing_ok=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.replace(aside, original)

    def _remove_if_stale(self, path: Path, cutoff: float, *, dry_run: bool) -> int | None:
        """Delete ``path`` if it is still older than ``cutoff``; its size, or ``None``."""
        if dry_run:
            try:
                stat = path.stat()
            except FileNotFoundError:
                return None
            return stat.st_size if stat.st_mtime < cutoff else None
        aside = path.with_name(_QUARANTINE_PREFIX + path.name)
        try:
            os.replace(path, aside)  # from here on, no upload can refresh this file
        except FileNotFoundError:
            return None
        stat = aside.stat()
        if stat.st_mtime >= cutoff:  # refreshed by an upload just before the rename
            if path.exists():
                aside.unlink()
            else:
                os.replace(aside, path)
            return None
        aside.unlink()
        return stat.st_size

    def _sweep_temporaries(self, cutoff: float, *, dry_run: bool) -> int:
        removed = 0
        with contextlib.suppress(FileNotFoundError):
            for path in (self.root / _INCOMING).iterdir():
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime < cutoff:
                        if not dry_run:
                            path.unlink()
                        removed += 1
        return removed


# -- cleaning ----------------------------------------------------------------------------------


_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
# Transforms by (profile digest, mode): building one costs a few ms, phones send one profile.
_TRANSFORMS: collections.OrderedDict[tuple[str, str], ImageCms.ImageCmsTransform | None] = (
    collections.OrderedDict()
)
_TRANSFORM_CACHE_SIZE = 16
# A grid of colours over the RGB cube: a profile that maps them all within this many levels
# of themselves is sRGB already, and its pixels are left as they are.
_SRGB_TOLERANCE = 1


def _is_identity(transform: ImageCms.ImageCmsTransform) -> bool:
    levels = range(0, 256, 17)
    grid = bytes(value for r in levels for g in levels for b in levels for value in (r, g, b))
    sample = Image.frombytes("RGB", (len(levels) ** 3, 1), grid)
    converted = ImageCms.applyTransform(sample, transform)
    if converted is None:
        return False
    return all(
        abs(a - b) <= _SRGB_TOLERANCE
        for a, b in zip(converted.tobytes(), sample.tobytes(), strict=True)
    )


def _transform_for(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """The cached transform from ``icc`` to sRGB for ``mode``; ``None`` when there is
    nothing to do (the profile is sRGB) or lcms refuses the profile."""
    key = (hashlib.sha256(icc).hexdigest(), mode)
    if key in _TRANSFORMS:
        _TRANSFORMS.move_to_end(key)
        return _TRANSFORMS[key]
    output_mode = "RGBA" if mode == "RGBA" else "RGB"
    transform: ImageCms.ImageCmsTransform | None
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        transform = ImageCms.buildTransform(source, _SRGB, mode, output_mode)
        if mode == "RGB" and _is_identity(transform):
            transform = None
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        transform = None
    _TRANSFORMS[key] = transform
    while len(_TRANSFORMS) > _TRANSFORM_CACHE_SIZE:
        _TRANSFORMS.popitem(last=False)
    return transform


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """``image`` converted from its embedded colour profile to sRGB, when lcms can.

    RGB and RGBA are converted in place. A profile that lcms refuses (corrupt, or not
    matching the image's mode) is only dropped: the pixels are then taken as sRGB, as
    browsers do for untagged images.
    """
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return image
    transform = _transform_for(icc, image.mode)
    if transform is None:
        return image
    try:
        if transform.output_mode == image.mode:
            ImageCms.applyTransform(image, transform, inPlace=True)
            return image
        converted = ImageCms.applyTransform(image, transform)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image
    return converted if converted is not None else image


def _replace(old: Image.Image, new: Image.Image) -> Image.Image:
    """``new``, having closed ``old`` (unless it is the same image): one buffer fewer."""
    if new is not old:
        old.close()
    return new


def _normalize_mode(image: Image.Image, transparency: bool) -> Image.Image:
    """``image`` as RGB or L, or RGBA or LA when it has an alpha channel or transparency."""
    mode = image.mode
    if mode in ("RGBA", "LA"):
        return image
    if mode in ("RGB", "L"):
        return image.convert(f"{mode}A") if transparency else image
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I;16"):
        # 16-bit greyscale: scaled to 8 bits rather than clipped at 255.
        scaled = image.point(lambda value: value * (1 / 256))
        return _replace(scaled, scaled.convert("L"))
    if mode.startswith("I") or mode == "F":
        return image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if mode == "La":
        return image.convert("LA")
    if mode in ("P", "PA", "RGBa"):
        return image.convert("RGBA" if transparency or mode != "P" else "RGB")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV


def _fit_in_bands(image: Image.Image, transparency: bool) -> Image.Image:
    """``image`` resized to fit MAX_SIDE and normalized (``_normalize_mode``).

    The same two passes as Pillow's own resize (horizontal, then vertical), but the first
    one band of rows at a time: resizing a whole image costs two more full copies of it
    (Pillow premultiplies alpha into a copy first) and expanding a palette four times its
    size. The decoded image is released between the passes. Alpha is premultiplied per
    band, as Pillow does, so the result is the same as one ``resize``.
    """
    width, height = image.size
    out_width, out_height = _fit(width, height, MAX_SIDE)
    band = _band_rows(width)
    wide: Image.Image | None = None
    for top in range(0, height, band):
        bottom = min(top + band, height)
        rows = _normalize_mode(image.crop((0, top, width, bottom)), transparency)
        premultiplied = {"RGBA": "RGBa", "LA": "La"}.get(rows.mode)
        if premultiplied:
            rows = _replace(rows, rows.convert(premultiplied))
        piece = rows.resize((out_width, bottom - top), Image.Resampling.LANCZOS)
        rows.close()
        if wide is None:
            wide = Image.new(piece.mode, (out_width, height))
        wide.paste(piece, (0, top))
        piece.close()
    assert wide is not None
    image.close()  # the caller's reference is closed too: one full-size buffer fewer
    fitted = _replace(wide, wide.resize((out_width, out_height), Image.Resampling.LANCZOS))
    if fitted.mode in ("RGBa", "La"):
        fitted = _replace(fitted, fitted.convert({"RGBa": "RGBA", "La": "LA"}[fitted.mode]))
    return fitted


def _has_transparency(image: Image.Image) -> bool:
    if image.mode not in ("RGBA", "LA"):
        return False
    low, _high = image.getextrema()[-1]  # type: ignore[misc]  # the alpha band, read in place
    return bool(low < 255)


def _flatten(image: Image.Image) -> Image.Image:
    """``image`` without alpha, composited over white (JPEG has no transparency)."""
    if image.mode not in ("RGBA", "LA"):
        return image
    flat = Image.new("RGB" if image.mode == "RGBA" else "L", image.size, "white")
    flat.paste(image, (0, 0), image)  # the alpha band is the mask: no copy of the image
    return flat


def _orientation(image: Image.Image) -> int | None:
    """The EXIF orientation; ``None`` when there is none or the EXIF cannot be read."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # corrupt EXIF: taken as upright
        try:
            value = image.getexif().get(ExifTags.Base.Orientation)
        except (OSError, SyntaxError, ValueError, TypeError, KeyError, struct.error):
            return None
    return value if isinstance(value, int) else None


def _clean(
    image: Image.Image, *, transparent_png: bool
) -> tuple[Image.Image, Image.Transpose | None]:
    """A new image with ``image``'s sRGB pixels and no metadata at all, and the transposition
    that turns it upright (``None`` when it is upright already).

    The transposition is left to the encoder (``_encode``, ``_thumbnail``): a JPEG is turned
    a band at a time as it is encoded, so that no second full-size buffer is made. Every step
    closes the image it replaces, so that at most two pixel buffers are alive at once
    (``_pipeline_bytes`` counts on it); the image is fitted to MAX_SIDE before the steps that
    expand it.
    """
    icc = image.info.get("icc_profile")
    transparency = "transparency" in image.info
    orientation = _orientation(image)
    current: Image.Image = image
    if max(current.size) > MAX_SIDE:
        current = _replace(current, _fit_in_bands(current, transparency))
    else:
        current = _replace(current, _normalize_mode(current, transparency))
    current = _replace(current, _to_srgb(current, icc))
    # Transparency survives only in a PNG: photos from cameras and WebP/HEIC become JPEG.
    if not transparent_png or not _has_transparency(current):
        current = _replace(current, _flatten(current))
    # Encoders read some metadata (comments, text chunks, profiles, transparency) from
    # ``info``: nothing of the upload's is left there.
    current.info = {}
    return current, _ORIENTATIONS.get(orientation) if orientation is not None else None


def _encode(
    image: Image.Image,
    content_type: str,
    file: IO[bytes] | _HashingWriter,
    turn: Image.Transpose | None = None,
) -> None:
    """Write ``image``, turned by ``turn``, as ``content_type`` (a PNG is never turned here:
    ``process`` turns it first)."""
    if content_type == "image/png":
        if turn is not None:
            raise ValueError("a PNG is turned before it is encoded")
        image.save(file, "PNG")  # type: ignore[arg-type]
    elif turn is None:
        image.save(file, "JPEG", quality=JPEG_QUALITY)  # type: ignore[arg-type]
    else:
        _write_turned_jpeg(image, turn, file)


# Transpositions that swap width and height.
_SWAPPING = frozenset(
    {
        Image.Transpose.TRANSPOSE,
        Image.Transpose.ROTATE_270,
        Image.Transpose.TRANSVERSE,
        Image.Transpose.ROTATE_90,
    }
)


def _turned_size(size: tuple[int, int], turn: Image.Transpose | None) -> tuple[int, int]:
    return (size[1], size[0]) if turn in _SWAPPING else size


def _turned_band(image: Image.Image, turn: Image.Transpose, top: int, bottom: int) -> Image.Image:
    """Rows ``top`` to ``bottom`` of ``image.transpose(turn)``, made from the strip of
    ``image`` they come from (a band of rows, or of columns when ``turn`` swaps the sides)."""
    width, height = image.size
    T = Image.Transpose
    if turn in (T.TRANSPOSE, T.ROTATE_270):  # output row y is column y
        box = (top, 0, bottom, height)
    elif turn in (T.TRANSVERSE, T.ROTATE_90):  # output row y is column width - 1 - y
        box = (width - bottom, 0, width - top, height)
    elif turn == T.FLIP_LEFT_RIGHT:
        box = (0, top, width, bottom)
    else:  # ROTATE_180, FLIP_TOP_BOTTOM: output row y is row height - 1 - y
        box = (0, height - bottom, width, height - top)
    strip = image.crop(box)
    return _replace(strip, strip.transpose(turn))


class _Splice(Exception):
    """The encoder's output cannot be joined into one JPEG (never seen: see the tests)."""


class _JpegLayout(NamedTuple):
    """Where the parts of a JPEG's header are, and its MCU's size in pixels."""

    sof: int  # offset of the SOF0 segment (the frame header)
    sos: int  # offset of the SOS segment (the scan header)
    scan: int  # offset where the entropy-coded data starts
    mcu_width: int
    mcu_height: int


def _jpeg_layout(data: bytes) -> _JpegLayout:
    """The layout of a baseline JPEG that Pillow has just written; raises ``_Splice`` for
    anything else."""
    if data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9":
        raise _Splice("not a whole JPEG")
    offset, sof = 2, -1
    while offset + 4 <= len(data) and data[offset] == 0xFF:
        marker = data[offset + 1]
        (length,) = struct.unpack_from(">H", data, offset + 2)
        if marker == 0xC0:
            sof = offset
        elif 0xC1 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            raise _Splice("not a baseline JPEG")
        elif marker == 0xDD:
            raise _Splice("restart markers already")
        elif marker == 0xDA:
            if sof < 0:
                raise _Splice("no frame header")
            count = data[sof + 9]
            factors = [data[sof + 11 + 3 * index] for index in range(count)]
            if count == 1:  # one component: an MCU is one 8x8 block, whatever its factors
                width = height = 8
            else:
                width = 8 * max(factor >> 4 for factor in factors)
                height = 8 * max(factor & 0x0F for factor in factors)
            return _JpegLayout(sof, offset, offset + 2 + length, width, height)
        offset += 2 + length
    raise _Splice("no scan")


def _write_turned_jpeg(
    image: Image.Image, turn: Image.Transpose, file: IO[bytes] | _HashingWriter
) -> None:
    """Write ``image.transpose(turn)`` as a JPEG without ever making that full-size image.

    Turning a 12-megapixel photo first costs a second 48 MB buffer, whose fresh pages cost
    more CPU than the turning itself. Instead, bands of output rows (a whole number of
    MCU rows each) are turned and encoded one at a time, each as a JPEG of its own with the
    same settings (so the same tables), and their entropy-coded data are joined with restart
    markers (RSTn) under the first band's header, whose height is set to the whole and which
    gets the restart interval (DRI) of one band. The DC predictions restart at each marker
    as at the start of each band's own JPEG, so the file is the one libjpeg writes for the
    whole turned image with ``restart_marker_rows`` of one band (tests compare the bytes).
    """
    out_width, out_height = _turned_size(image.size, turn)
    rows = max(16, _TURN_BAND_BYTES // (4 * out_width) // 16 * 16)
    if out_height > rows:
        try:
            parts = _turned_jpeg_parts(image, turn, rows)
        except _Splice:  # not with Pillow's encoder (tests); stay correct if it ever happened
            pass
        else:
            for part in parts:
                file.write(part)
            return
    # One band: the whole image, as it is.
    turned = image.transpose(turn)
    turned.save(file, "JPEG", quality=JPEG_QUALITY)  # type: ignore[arg-type]
    turned.close()


def _turned_jpeg_parts(image: Image.Image, turn: Image.Transpose, rows: int) -> list[bytes]:
    """The pieces of the JPEG of ``image.transpose(turn)`` made of bands of ``rows`` rows
    (see ``_write_turned_jpeg``); raises ``_Splice`` if the bands cannot be joined."""
    out_width, out_height = _turned_size(image.size, turn)
    parts: list[bytes] = []
    header = b""
    for index, top in enumerate(range(0, out_height, rows)):
        band = _turned_band(image, turn, top, min(top + rows, out_height))
        buffer = io.BytesIO()
        band.save(buffer, "JPEG", quality=JPEG_QUALITY)
        band.close()
        data = buffer.getvalue()
        layout = _jpeg_layout(data)
        # Everything but the frame's height must be the same in every band.
        head = bytearray(data[: layout.scan])
        struct.pack_into(">H", head, layout.sof + 5, 0)
        if index == 0:
            header = bytes(head)
            interval = rows // layout.mcu_height * -(-out_width // layout.mcu_width)
            if rows % layout.mcu_height or interval > 0xFFFF:
                raise _Splice("bands are not whole MCU rows")
            struct.pack_into(">H", head, layout.sof + 5, out_height)
            dri = b"\xff\xdd\x00\x04" + struct.pack(">H", interval)
            parts.append(bytes(head[: layout.sos]) + dri + bytes(head[layout.sos :]))
        elif bytes(head) != header:
            raise _Splice("bands encoded with different tables")
        else:
            parts.append(bytes((0xFF, 0xD0 + (index - 1) % 8)))  # RST0..RST7
        parts.append(data[layout.scan : -2])
    parts.append(b"\xff\xd9")
    return parts


def _reduce(image: Image.Image, factor: int) -> Image.Image:
    """``image.reduce(factor)``; with alpha, band by band (Pillow premultiplies a copy of the
    whole image first). A box reduction only mixes pixels of the same band: exact."""
    if image.mode not in ("RGBA", "LA"):
        return image.reduce(factor)
    width, height = image.size
    band = max(1, _band_rows(width) // factor) * factor
    result = Image.new(image.mode, (-(-width // factor), -(-height // factor)))
    for top in range(0, height, band):
        rows = image.crop((0, top, width, min(top + band, height)))
        piece = rows.reduce(factor)
        rows.close()
        result.paste(piece, (0, top // factor))
        piece.close()
    return result


def _thumbnail(image: Image.Image, size: int, turn: Image.Transpose | None = None) -> Image.Image:
    """A copy whose long side is ``size`` (smaller images are not enlarged), without alpha,
    turned by ``turn``.

    A box reduction by a whole factor (reads each pixel once), then Lanczos for the rest,
    then the (small) thumbnail is turned.
    """
    target = _fit(*image.size, size)
    factor = max(1, min(image.width // target[0], image.height // target[1]))
    thumb = _reduce(image, factor) if factor > 1 else image.copy()
    if thumb.size != target:
        thumb = _replace(thumb, thumb.resize(target, Image.Resampling.LANCZOS))
    if turn is not None:
        thumb = _replace(thumb, thumb.transpose(turn))
    return _replace(thumb, _flatten(thumb))
