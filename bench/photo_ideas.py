#!/usr/bin/env python3
"""The steps of cleaning a 12 MP portrait photo, and the alternatives weighed for each.

Each operation is run ``--repeat`` times on the benchmark's phone JPEG (``photo_bench``),
memory being given back (``malloc_trim``) before each run, as in the server; the median CPU
time (user + system) is printed, in milliseconds, with the page faults of the median run.
What each line is for is in bench/README.md (issue 13, item 5).

Usage: ``.venv/bin/python bench/photo_ideas.py [--repeat 9]``
"""

from __future__ import annotations

import argparse
import hashlib
import io
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

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


def measure(
    function: Callable[[Any], Any], repeat: int, setup: Callable[[], Any] = lambda: None
) -> tuple[float, int]:
    """Median CPU ms (and that run's page faults) of ``function(setup())``; ``setup`` is
    not timed."""
    runs = []
    for _ in range(repeat + 1):
        photos._give_back_memory()
        argument = setup()
        cpu, faults = _usage()
        result = function(argument)
        cpu_after, faults_after = _usage()
        for done in (result, argument):
            if isinstance(done, Image.Image):
                done.close()
        runs.append((1000 * (cpu_after - cpu), faults_after - faults))
    runs = sorted(runs[1:])
    return runs[len(runs) // 2]


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
        (
            "thumbnail: reduce(12) + Lanczos + turn",
            lambda _: photos._thumbnail(image, size, TURN),
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
    print(f"{'step':48s} {'CPU ms':>7s} {'faults':>7s}")
    for label, function, setup in lines:
        cpu, faults = measure(function, args.repeat, setup)
        print(f"{label:48s} {cpu:7.1f} {faults:7d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
