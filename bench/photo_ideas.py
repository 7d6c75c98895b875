#!/usr/bin/env python3
"""The steps of cleaning a 12 MP portrait photo, and the alternatives weighed for each.

Each operation is run ``--repeat`` times on the benchmark's phone JPEG (``photo_bench``),
memory being given back (``malloc_trim``) before each run, as in the server, the operations
taking turns (rounds of all of them, each round in a new order) so that the shared machine's
drifting load touches them alike; the median CPU time (user + system) is printed, in
milliseconds, with the page faults of the median run, then how faithful the cheaper
thumbnails are.
What each line is for is in bench/README.md (issue 13, item 5).

Usage: ``.venv/bin/python bench/photo_ideas.py [--repeat 9]``
"""

from __future__ import annotations

import argparse
import hashlib
import io
import math
import random
import re
import resource
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageOps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from photo_bench import phone_jpeg  # noqa: E402

from helpdesk import photos  # noqa: E402

QUALITY = photos.JPEG_QUALITY
TURN = Image.Transpose.ROTATE_270  # EXIF orientation 6


def _usage() -> tuple[float, int]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_minflt


def measure_once(
    function: Callable[[Any], Any], setup: Callable[[], Any] = lambda: None
) -> tuple[float, int]:
    """CPU ms and page faults of one ``function(setup())``, memory given back before it;
    ``setup`` is not timed."""
    photos._give_back_memory()
    argument = setup()
    cpu, faults = _usage()
    result = function(argument)
    cpu_after, faults_after = _usage()
    for done in (result, argument):
        if isinstance(done, Image.Image):
            done.close()
    return 1000 * (cpu_after - cpu), faults_after - faults


def decoded(data: bytes, mode: str | None = None) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    if mode:
        image.draft(mode, None)
    image.load()
    return image


def save(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=QUALITY)
    return buffer.getvalue()


def turned_whole(image: Image.Image) -> bytes:
    turned = image.transpose(TURN)
    data = save(turned)
    turned.close()
    return data


def turned_in_bands(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    photos._write_turned_jpeg(image, TURN, buffer)
    return buffer.getvalue()


def turned_in_bands_of(image: Image.Image, rows: int) -> bytes:
    saved = photos._TURN_BAND_BYTES
    photos._TURN_BAND_BYTES = rows * 4 * image.height
    try:
        return turned_in_bands(image)
    finally:
        photos._TURN_BAND_BYTES = saved


def column_bands(image: Image.Image, rows: int = 64) -> None:
    """Only the crops of ``_turned_band`` (bands of columns, as for EXIF orientation 6)."""
    for left in range(0, image.width, rows):
        image.crop((left, 0, min(left + rows, image.width), image.height)).close()


def row_bands(image: Image.Image, rows: int = 64) -> None:
    """The same bytes cropped as bands of rows: what the crops would cost read row-wise."""
    for top in range(0, image.height, rows):
        image.crop((0, top, image.width, min(top + rows, image.height))).close()


def transposed_bands(strips: list[Image.Image]) -> None:
    """Only the turning of ``_turned_band``, on bands of columns cropped beforehand."""
    for strip in strips:
        strip.transpose(TURN).close()


def decoded_into_buffer(data: bytes) -> tuple[Image.Image, bytearray]:
    """The photo decoded into a buffer of ours (one row of slack for views), through
    Pillow's own mechanism for memory-mapped files (``core.map_buffer``): so that bands of
    columns can be *views* of the decoded pixels instead of copies."""
    image = Image.open(io.BytesIO(data))
    buffer = bytearray(4 * image.width * (image.height + 1))
    image.im = Image.core.map_buffer(buffer, image.size, "raw", 0, ("RGB", 0, 1))
    image.load()
    return image, buffer


def turned_from_views(image: Image.Image, buffer: bytearray, rows: int = 64) -> bytes:
    """``turned_in_bands`` without the crops: each band of columns is a zero-copy view of
    the decoded buffer (stride = a whole row), turned and encoded (headers not joined)."""
    out = io.BytesIO()
    width, height = image.size
    view = memoryview(buffer)
    for left in range(0, width, rows):
        right = min(left + rows, width)
        strip = Image.frombuffer(
            "RGBX", (right - left, height), view[4 * left :], "raw", "RGBX", 4 * width, 1
        )
        band = strip.transpose(TURN)
        band.save(out, "JPEG", quality=QUALITY)
        band.close()
    return out.getvalue()


_RESTART = re.compile(rb"\xff[\xd0-\xd7]")


def turned_in_mcu_columns(image: Image.Image, mcus: int = 9) -> bytes:
    """The turned JPEG made of *columns* of ``mcus`` MCUs (16 px each) with a restart marker
    at each MCU row: a column of the turned photo is a band of *rows* of the upload (cheap
    to crop: contiguous), and its restart intervals are spliced into raster order. Needs
    the turned width to be a multiple of 16 * ``mcus`` (3024 = 21 x 144)."""
    width, height = image.size  # the upload: 4032 x 3024; turned: 3024 x 4032
    step = 16 * mcus
    columns: list[list[bytes]] = []
    header = b""
    for left in range(0, height, step):
        right = min(left + step, height)
        # ROTATE_270: turned column x is upload row height - 1 - x.
        rows = image.crop((0, height - right, width, height - left))
        column = rows.transpose(TURN)
        rows.close()
        out = io.BytesIO()
        column.save(out, "JPEG", quality=QUALITY, restart_marker_blocks=mcus)
        column.close()
        data = out.getvalue()
        sos = data.index(b"\xff\xda")
        (length,) = struct.unpack_from(">H", data, sos + 2)
        if not header:  # the first column's header, its width made the turned photo's
            head = bytearray(data[: sos + 2 + length])
            struct.pack_into(">H", head, head.index(b"\xff\xc0") + 7, height)
            header = bytes(head)
        columns.append(_RESTART.split(data[sos + 2 + length : -2]))
    parts = [header]
    for row in range(len(columns[0])):
        for index, column in enumerate(columns):
            parts.append(column[row])
            parts.append(bytes((0xFF, 0xD0 + (row * len(columns) + index) % 8)))
    parts[-1] = b"\xff\xd9"
    return b"".join(parts)


def thumbnail_in_band_loop(image: Image.Image, size: int, rows: int = 48) -> Image.Image:
    """The thumbnail's box reduction done inside the band loop, on each band of columns while
    it is in the CPU's caches (bands a multiple of 12 wide), then Lanczos and turn."""
    factor = 12
    small = Image.new("RGB", (-(-image.width // factor), -(-image.height // factor)))
    out = io.BytesIO()
    for left in range(0, image.width, rows):
        strip = image.crop((left, 0, min(left + rows, image.width), image.height))
        piece = strip.reduce(factor)
        small.paste(piece, (left // factor, 0))
        piece.close()
        band = strip.transpose(TURN)
        strip.close()
        band.save(out, "JPEG", quality=QUALITY)
        band.close()
    thumb = small.resize(photos._fit(*image.size, size), Image.Resampling.LANCZOS)
    small.close()
    return thumb.transpose(TURN)


def thumbnail_by_decoding_the_output(encoded: bytes, size: int) -> Image.Image:
    """The thumbnail from the cleaned JPEG decoded at 1/8 (DCT scaling): no pass over the
    decoded photo, but a second entropy decoding."""
    image = Image.open(io.BytesIO(encoded))
    image.draft("RGB", (image.width // 8, image.height // 8))
    image.load()
    return image.resize(photos._fit(*image.size, size), Image.Resampling.LANCZOS)


def thumbnail_by_decimation(image: Image.Image, size: int) -> Image.Image:
    """Every third pixel of every third row (NEAREST), then reduce(4): 1/9 of the pixels."""
    sampled = image.resize((image.width // 3, image.height // 3), Image.Resampling.NEAREST)
    reduced = sampled.reduce(4)
    sampled.close()
    return reduced.resize(photos._fit(*image.size, size), Image.Resampling.LANCZOS)


def _psnr(a: Image.Image, b: Image.Image) -> float:
    x = np.asarray(a, np.float64)
    y = np.asarray(b, np.float64)
    mse = float(((x - y) ** 2).mean())
    return 10 * math.log10(255**2 / mse) if mse else math.inf


def thumbnail_fidelity(photo: Image.Image, size: int) -> None:
    """How close each way of making the thumbnail comes to a one-step Lanczos of the whole
    image, on the benchmark's photo and on small print (receipts, labels): PSNR in dB."""
    text = Image.new("RGB", photo.size, "white")
    draw = ImageDraw.Draw(text)
    for top in range(0, text.height, 24):
        draw.text(
            (10, top), "Order 10234 case cracked at the corner 0123456789 " * 10, fill="black"
        )
    print(f"\n{'thumbnail fidelity (PSNR, dB)':48s} {'photo':>7s} {'print':>7s}")
    ways = (
        ("reduce(12) + Lanczos (kept)", lambda im: photos._thumbnail(im, size)),
        ("decimation 1/3 + reduce(4) + Lanczos", lambda im: thumbnail_by_decimation(im, size)),
    )
    references = [
        im.resize(photos._fit(*im.size, size), Image.Resampling.LANCZOS) for im in (photo, text)
    ]
    for label, way in ways:
        scores = [_psnr(way(im), ref) for im, ref in zip((photo, text), references, strict=True)]
        print(f"{label:48s} {scores[0]:7.1f} {scores[1]:7.1f}")


def thumbnail_by_second_decode(data: bytes, size: int) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (size, size))  # DCT scaling: 1/8
    image.load()
    thumb = image.resize(photos._fit(*image.size, size), Image.Resampling.LANCZOS)
    image.close()
    return thumb.transpose(TURN)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    data = phone_jpeg(6)
    image = decoded(data)  # in the upload's orientation, as ``_clean`` leaves it
    ycbcr = image.convert("YCbCr")
    encoded = turned_in_bands(image)
    assert Image.open(io.BytesIO(encoded)).size == (image.height, image.width)
    mapped, buffer = decoded_into_buffer(data)
    assert mapped.tobytes() == image.tobytes()
    spliced = turned_in_mcu_columns(image)
    assert Image.open(io.BytesIO(spliced)).tobytes() == Image.open(io.BytesIO(encoded)).tobytes()
    strips = [
        image.crop((left, 0, min(left + 64, image.width), image.height))
        for left in range(0, image.width, 64)
    ]
    size = 320
    none = lambda: None  # noqa: E731
    lines: list[tuple[str, Callable[[Any], Any], Callable[[], Any]]] = [
        ("decode (RGB), as plain Pillow", lambda _: decoded(data), none),
        ("decode to YCbCr (draft mode)", lambda _: decoded(data, "YCbCr"), none),
        ("encode q85 from RGB, as plain Pillow", lambda _: save(image), none),
        ("encode q85 from YCbCr", lambda _: save(ycbcr), none),
        ("Image.transpose (whole image)", lambda _: image.transpose(TURN), none),
        ("ImageOps.exif_transpose (whole image)", ImageOps.exif_transpose, lambda: decoded(data)),
        ("turn whole, then encode (before)", lambda _: turned_whole(image), none),
        ("turn and encode in bands (after)", lambda _: turned_in_bands(image), none),
        ("  of which: crop the bands of columns", lambda _: column_bands(image), none),
        ("  of which: turn the cropped bands", lambda _: transposed_bands(strips), none),
        ("  the same crops as bands of rows", lambda _: row_bands(image), none),
        ("turn and encode in bands of 32 rows", lambda _: turned_in_bands_of(image, 32), none),
        ("turn and encode in bands of 128 rows", lambda _: turned_in_bands_of(image, 128), none),
        (
            "turn views of the decoded buffer (no crop)",
            lambda _: turned_from_views(mapped, buffer),
            none,
        ),
        ("turn MCU columns, restart per MCU row", lambda _: turned_in_mcu_columns(image), none),
        (
            "thumbnail: reduce(12) + Lanczos + turn",
            lambda _: photos._thumbnail(image, size, TURN),
            none,
        ),
        ("  of which: reduce(12)", lambda _: image.reduce(12), none),
        (
            "thumbnail: inside the band loop (+ turn, encode)",
            lambda _: thumbnail_in_band_loop(image, size),
            none,
        ),
        (
            "thumbnail: 1/8 decode of the cleaned JPEG",
            lambda _: thumbnail_by_decoding_the_output(encoded, size),
            none,
        ),
        (
            "thumbnail: decimation 1/3 + reduce(4) + Lanczos",
            lambda _: thumbnail_by_decimation(image, size),
            none,
        ),
        (
            "thumbnail: second decode at 1/8 + Lanczos",
            lambda _: thumbnail_by_second_decode(data, size),
            none,
        ),
        (
            "thumbnail: Image.thumbnail on a copy",
            lambda _: image.copy().thumbnail((size, size)),
            none,
        ),
        (
            "thumbnail: resize(BOX) in one step",
            lambda _: image.resize((size, 240), Image.Resampling.BOX),
            none,
        ),
        ("SHA-256 of the encoded photo", lambda _: hashlib.sha256(encoded).digest(), none),
    ]
    # Rounds: every line once per round, in a new order each time, so that the machine's
    # drifting load and what the line before left in the caches fall on all of them alike
    # (a fixed order made a line 10-15 ms dearer or cheaper depending on its neighbour).
    # The first round warms caches and is dropped.
    runs: list[list[tuple[float, int]]] = [[] for _ in lines]
    order = list(range(len(lines)))
    shuffler = random.Random(13)
    for round_ in range(args.repeat + 1):
        shuffler.shuffle(order)
        for index in order:
            _label, function, setup = lines[index]
            measured = measure_once(function, setup)
            if round_:
                runs[index].append(measured)
    print(f"{'step':48s} {'CPU ms':>7s} {'faults':>7s}")
    for (label, _function, _setup), measured in zip(lines, runs, strict=True):
        cpu, faults = sorted(measured)[len(measured) // 2]
        print(f"{label:48s} {cpu:7.1f} {faults:7d}")
    thumbnail_fidelity(image, size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
