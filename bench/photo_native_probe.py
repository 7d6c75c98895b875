#!/usr/bin/env python3
"""What a small compiled helper would save on a portrait photo: a probe, not part of the app.

Issue 13, item 5 (bench/README.md, third round): with Pillow's own operations the turning
of a portrait photo costs a crop and a transpose (two passes) and the thumbnail a scalar box
reduction. This probe compiles ``photo_native_probe.c`` (a one-pass SSE2 turning of a band
of columns, and an SSE2 box reduction) with the system's C compiler into a temporary folder,
reaches the decoded pixels through Pillow's public Arrow export (zero-copy; it needs the
image in one memory block, hence ``PILLOW_BLOCK_SIZE``-style ``core.set_block_size`` for
both sides), and measures, memory given back before each run (the benchmark's "cold"):

* each step alone, Pillow against the helper (and checks that they give the same pixels);
* ``PhotoStore.process`` on the portrait photo as it is and with its turning and thumbnail
  reduction done by the helper, each against plain Pillow's decode+encode in the same round.

Usage: ``.venv/bin/python bench/photo_native_probe.py [--repeat 15]`` (needs gcc or cc).
"""

from __future__ import annotations

import argparse
import ctypes
import io
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from photo_bench import phone_jpeg, plain_pillow  # noqa: E402
from photo_ideas import measure_once  # noqa: E402

from helpdesk import photos  # noqa: E402
from helpdesk.photos import PhotoStore  # noqa: E402

TURN = Image.Transpose.ROTATE_270


class ArrowArray(ctypes.Structure):
    """The Arrow C data interface's ``struct ArrowArray`` (a stable ABI)."""


ArrowArray._fields_ = [
    ("length", ctypes.c_int64),
    ("null_count", ctypes.c_int64),
    ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(ArrowArray))),
    ("dictionary", ctypes.POINTER(ArrowArray)),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]
_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_get_pointer.restype = ctypes.c_void_p
_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def pixels(image: Image.Image) -> tuple[int, Any]:
    """The address of ``image``'s pixels (rows of 4-byte pixels, back to back) and the capsule
    that keeps them exported (keep it as long as the address is used)."""
    _schema, capsule = image.__arrow_c_array__()
    array = ArrowArray.from_address(_get_pointer(capsule, b"arrow_array"))
    child = array.children[0].contents  # a fixed-size list of 4 bytes: its one child holds them
    assert array.n_children == 1 and child.length == 4 * image.width * image.height
    return int(child.buffers[1]), capsule


def build(folder: Path) -> ctypes.CDLL:
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise SystemExit("no C compiler: nothing to probe")
    library = folder / "photo_native_probe.so"
    source = ROOT / "bench" / "photo_native_probe.c"
    subprocess.run(
        [compiler, "-O3", "-msse2", "-shared", "-fPIC", "-o", str(library), str(source)],
        check=True,
    )
    native = ctypes.CDLL(str(library))
    for name in ("turn270_band", "reduce_box"):
        getattr(native, name).restype = None
    return native


class Helper:
    """``photos._turned_band`` and ``photos._reduce`` done by the compiled helper where it
    applies (RGB, EXIF orientation 6, sides multiples of 4 / of the factor)."""

    def __init__(self, native: ctypes.CDLL) -> None:
        self.native = native
        self.exported: dict[int, tuple[int, Any]] = {}
        self.original_band = photos._turned_band
        self.original_reduce = photos._reduce
        self.band_buffer = bytearray()

    def source(self, image: Image.Image) -> int:
        key = id(image.im)
        if key not in self.exported:
            self.exported = {key: pixels(image)}
        return self.exported[key][0]

    def turned_band(
        self, image: Image.Image, turn: Image.Transpose, top: int, bottom: int
    ) -> Image.Image:
        if turn != TURN or image.mode != "RGB" or image.height % 4 or (bottom - top) % 4:
            return self.original_band(image, turn, top, bottom)
        # One buffer for every band (each is encoded and closed before the next is asked
        # for): a fresh one per band would cost its page faults each time.
        size = 4 * image.height * (bottom - top)
        if len(self.band_buffer) < size:
            self.band_buffer = bytearray(size)
        out = memoryview(self.band_buffer)[:size]
        self.native.turn270_band(
            ctypes.c_void_p(self.source(image)),
            image.width,
            image.height,
            top,
            bottom,
            (ctypes.c_char * size).from_buffer(self.band_buffer),
        )
        return Image.frombuffer("RGBX", (image.height, bottom - top), out, "raw", "RGBX", 0, 1)

    def reduce(self, image: Image.Image, factor: int) -> Image.Image:
        if image.mode != "RGB" or image.width % factor or image.height % factor or factor > 16:
            return self.original_reduce(image, factor)
        size = (image.width // factor, image.height // factor)
        out = bytearray(4 * size[0] * size[1])
        self.native.reduce_box(
            ctypes.c_void_p(self.source(image)),
            image.width,
            image.height,
            factor,
            (ctypes.c_char * len(out)).from_buffer(out),
        )
        return Image.frombuffer("RGBX", size, out, "raw", "RGBX", 0, 1).convert("RGB")

    def __enter__(self) -> Helper:
        photos._turned_band = self.turned_band  # type: ignore[assignment]
        photos._reduce = self.reduce
        return self

    def __exit__(self, *_exc: object) -> None:
        photos._turned_band = self.original_band
        photos._reduce = self.original_reduce
        self.exported = {}
        self.band_buffer = bytearray()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    # One block per image, so that the Arrow export is zero-copy (for both sides alike).
    Image.core.set_block_size(64 * 1024 * 1024)
    with tempfile.TemporaryDirectory() as folder:
        native = build(Path(folder))
        helper = Helper(native)
        data = phone_jpeg(6)
        image = Image.open(io.BytesIO(data))
        image.load()
        width, height = image.size

        # The same pixels: a band turned, and the thumbnail's reduction (within 1 level).
        with helper:
            band = photos._turned_band(image, TURN, 128, 192).convert("RGB")
            reduced = photos._reduce(image, 12)
        assert band.tobytes() == image.crop((128, 0, 192, height)).transpose(TURN).tobytes()
        expected = image.reduce(12).tobytes()
        assert max(abs(a - b) for a, b in zip(reduced.tobytes(), expected, strict=True)) <= 1
        store_root = Path(folder) / "store"
        with helper:
            photo = PhotoStore(store_root / "check").process(
                data, filename="a.jpg", field_label="写真"
            )
        stored = Image.open(PhotoStore(store_root / "check").path(photo.digest))
        upright = image.transpose(TURN)
        assert stored.size == upright.size
        plain = io.BytesIO()
        upright.save(plain, "JPEG", quality=photos.JPEG_QUALITY)
        assert stored.tobytes() == Image.open(plain).tobytes(), "not the pixels of the turned photo"

        def turn_pillow(_: object) -> None:
            for left in range(0, width, 64):
                photos._turned_band(image, TURN, left, min(left + 64, width)).close()

        def turn_helper(_: object) -> None:
            with helper:
                turn_pillow(None)

        def reduce_helper(_: object) -> Image.Image:
            with helper:
                return photos._reduce(image, 12)

        counter = iter(range(10**9))

        def process(with_helper: bool) -> Callable[[object], object]:
            def run(_: object) -> object:
                store = PhotoStore(store_root / str(next(counter)))
                if not with_helper:
                    return store.process(data, filename="a.jpg", field_label="写真")
                with helper:
                    return store.process(data, filename="a.jpg", field_label="写真")

            return run

        lines: list[tuple[str, Callable[[object], object]]] = [
            ("plain Pillow decode + encode (baseline)", lambda _: plain_pillow(data)),
            ("PhotoStore.process, portrait (as it is)", process(False)),
            ("PhotoStore.process, portrait, with the helper", process(True)),
            ("turning the bands: crop + transpose", turn_pillow),
            ("turning the bands: helper, one pass", turn_helper),
            ("thumbnail reduce(12): Pillow", lambda _: image.reduce(12)),
            ("thumbnail reduce(12): helper", reduce_helper),
        ]
        runs: list[list[float]] = [[] for _ in lines]
        order = list(range(len(lines)))
        shuffler = random.Random(13)
        for round_ in range(args.repeat + 1):
            shuffler.shuffle(order)
            for index in order:
                cpu, _faults = measure_once(lines[index][1])
                if round_:
                    runs[index].append(cpu)
        medians = [statistics.median(measured) for measured in runs]
        print(f"{'step (cold, median CPU ms)':48s} {'CPU ms':>7s}")
        for (label, _function), median in zip(lines, medians, strict=True):
            print(f"{label:48s} {median:7.1f}")
        baseline = medians[0]
        print(
            f"\nratio to plain Pillow: as it is x{medians[1] / baseline:.2f}, "
            f"with the helper x{medians[2] / baseline:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
