#!/usr/bin/env python3
"""Photo cleaning: CPU against plain Pillow, and the server's memory under the worst photos.

Two measurements, each against its baseline in the same run (the machine is shared):

1. CPU (issue 13, item 5). A 12-megapixel phone JPEG made here (4032x3024, smooth content
   with sensor-like noise, EXIF with orientation, GPS, XMP and a comment, about 4 MB) is
   cleaned by ``PhotoStore.process`` (decode, orientation, metadata dropped, re-encode,
   thumbnail, hashing, writing) and, alternately, opened, loaded and saved at the same JPEG
   quality by plain Pillow. CPU time (user + system, ``resource.getrusage``) of each; the
   median of the per-pair ratios is reported, "warm" and "cold" (see ``cpu_phase``).
   Target: <= 1.25.

2. Memory (issue 7, finding 3). ``main.py serve`` runs as a subprocess; its resident memory
   is read from /proc: idle (after one small submission), then the peak (VmHWM, reset
   before each case) while it handles one API submission carrying the worst PNG the
   limits accept in both photo fields, then two such submissions at once. Target: peak
   within 300 MB of idle.

Usage: ``.venv/bin/python bench/photo_bench.py [--repeat 9] [--json results.json] [--cpu-only]``
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpdesk.photos import PhotoError, PhotoStore, _give_back_memory  # noqa: E402
from helpdesk.settings import Settings  # noqa: E402

MB = 1024 * 1024
JPEG_QUALITY = 85  # the store's own quality: the baseline saves at the same one
BOUNDARY = "photobenchboundary"


# -- inputs ------------------------------------------------------------------------------------


def phone_jpeg(orientation: int, *, width: int = 4032, height: int = 3024) -> bytes:
    """A 12 MP photo as a phone saves it: smooth surfaces, sensor noise, EXIF, GPS, XMP."""
    rng = np.random.default_rng(12)
    small = rng.integers(0, 256, (height // 48, width // 48, 3), dtype=np.uint8)
    base = np.asarray(
        Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC), np.float32
    )
    pixels = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Apple"
    exif[ExifTags.Base.Model] = "iPhone 15"
    exif[ExifTags.Base.Orientation] = orientation
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(
        {1: "N", 2: (35.0, 40.0, 52.0), 3: "E", 4: (139.0, 46.0, 1.0)}
    )
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=92, exif=exif, xmp=xmp, comment=b"bench")
    return buffer.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_of_zeros(width: int, height: int, color_type: int, bit_depth: int) -> bytes:
    """A valid PNG of one colour, compressed a thousand to one: a few hundred KB at most."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row = bytes(1 + (width * channels * bit_depth + 7) // 8)
    compressor = zlib.compressobj(9)
    batch = max(1, 1_000_000 // len(row))
    full, rest = divmod(height, batch)
    idat = b"".join(compressor.compress(row * batch) for _ in range(full))
    idat += compressor.compress(row * rest) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


def worst_png(store: PhotoStore) -> tuple[str, bytes, int]:
    """The accepted PNG with the largest memory estimate, among the shapes and depths that
    cost the most (16-bit RGBA, RGB, 16-bit grey; square, 4:3, 20:1), each grown to the
    largest size the store accepts. Returns (description, data, estimate)."""
    best: tuple[str, bytes, int] | None = None
    for color_type, bit_depth, name in ((6, 16, "RGBA 16-bit"), (2, 8, "RGB"), (0, 16, "grey 16")):
        for aspect in (1.0, 4 / 3, 20.0):
            low, high = 100, 20_000
            while high - low > 8:  # the largest height accepted, by bisection on the header
                height = (low + high) // 2
                width = round(height * aspect)
                try:
                    store.inspect(png_header(width, height, color_type, bit_depth), field_label="b")
                    low = height
                except PhotoError:
                    high = height
            width = round(low * aspect)
            data = png_of_zeros(width, low, color_type, bit_depth)
            estimate = store.inspect(data, field_label="bench").memory
            if best is None or estimate > best[2]:
                best = (f"{width}x{low} {name} PNG", data, estimate)
    assert best is not None
    return best


def png_header(width: int, height: int, color_type: int, bit_depth: int) -> bytes:
    """Only the header of such a PNG: enough for ``inspect``, which decodes nothing."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"") + _chunk(b"IEND", b"")
    )


# -- CPU -----------------------------------------------------------------------------------------


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def plain_pillow(data: bytes) -> None:
    image = Image.open(io.BytesIO(data))
    image.load()
    image.save(io.BytesIO(), "JPEG", quality=JPEG_QUALITY)


def cpu_phase(repeat: int) -> dict[str, Any]:
    """Pairs (plain Pillow, then ``PhotoStore.process``) on the same photo, two ways each time:

    * ``warm`` (the measure of earlier rounds): one right after the other, as they come.
      ``process`` gives freed memory back to the system at its end (``malloc_trim``), so the
      next plain Pillow run pays the page faults of fresh memory for its decoded image,
      while ``process`` reuses the pages plain Pillow has just freed.
    * ``cold``: memory is given back before each of the two, so that both start like a
      photo in the server does (after the previous photo's ``malloc_trim``) and both pay
      the page faults of their decoded image.
    """
    inputs = {orientation: phone_jpeg(orientation) for orientation in (6, 1)}
    pairs: dict[tuple[int, str], list[tuple[float, float]]] = {
        (orientation, way): [] for orientation in inputs for way in ("warm", "cold")
    }
    with tempfile.TemporaryDirectory() as folder:
        # Orientations and ways alternate within each attempt, so that whatever drifts
        # during the run (the allocator's thresholds, the machine's load) touches them all.
        for attempt in range(repeat + 1):
            for (orientation, way), measured in pairs.items():
                data = inputs[orientation]
                # A fresh store each time, else the content-addressed store skips the write.
                store = PhotoStore(Path(folder) / f"{orientation}-{way}-{attempt}")
                if way == "cold":
                    _give_back_memory()
                started = _cpu()
                plain_pillow(data)
                middle = _cpu()
                if way == "cold":
                    _give_back_memory()
                    middle = _cpu()
                store.process(data, filename="IMG_0001.JPG", field_label="写真")
                ended = _cpu()
                if attempt:  # the first round warms caches and imports
                    measured.append((middle - started, ended - middle))
    results: dict[str, Any] = {}
    for (orientation, way), measured in pairs.items():
        ratios = sorted(ours / plain for plain, ours in measured)
        figures = results.setdefault(
            f"orientation_{orientation}", {"jpeg_bytes": len(inputs[orientation])}
        )
        figures[way] = {
            "plain_pillow_ms": round(1000 * statistics.median(p for p, _ in measured), 1),
            "photo_store_ms": round(1000 * statistics.median(o for _, o in measured), 1),
            "ratio_median": round(statistics.median(ratios), 3),
            "ratio_min_max": [round(ratios[0], 3), round(ratios[-1], 3)],
        }
    return results


# -- the server's memory ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS


def _body(index: int, photo: bytes) -> bytes:
    arrived = (date.today() - timedelta(days=1)).isoformat()
    fields = {
        "kind": "defect",
        "name": "山田 花子",
        "email": f"customer{index}@example.jp",
        "order_number": f"#{100000 + index}",
        "arrived_on": arrived,
        "description": "ケースの角にひびが入っていました。",
    }
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    for name in ("photo_overall", "photo_defect"):
        parts.append(
            (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{name}.png"\r\nContent-Type: image/png\r\n\r\n'
            ).encode()
        )
        parts += [photo, b"\r\n"]
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts)


def _post(port: int, body: bytes) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/tickets",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def memory_phase(photo: bytes) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        port = _free_port()
        env = {
            **os.environ,
            "HELPDESK_VAR_DIR": folder,
            "HELPDESK_SEND_MAIL_IN_PROCESS": "false",
            "HELPDESK_SUBMISSION_RATE": "1000/1m",
            "HELPDESK_SECRET_KEY": "bench-secret-key-not-for-production",
        }
        env.pop("HELPDESK_DATABASE_URL", None)
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            small = io.BytesIO()
            Image.new("RGB", (640, 480), "navy").save(small, "JPEG")
            assert _post(port, _body(0, small.getvalue())) in (200, 201)
            time.sleep(0.5)
            idle = _status(server.pid, "VmRSS")

            _reset_peak(server.pid)
            one = _post(port, _body(1, photo))
            single = _status(server.pid, "VmHWM")

            time.sleep(0.5)
            settled = _status(server.pid, "VmRSS")
            _reset_peak(server.pid)
            statuses: list[int] = []
            threads = [
                threading.Thread(target=lambda i=i: statuses.append(_post(port, _body(i, photo))))
                for i in (2, 3)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            double = _status(server.pid, "VmHWM")
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {
        "idle_rss_mb": round(idle / MB, 1),
        "one_request": {"status": one, "peak_over_idle_mb": round((single - idle) / MB, 1)},
        "rss_after_one_mb": round(settled / MB, 1),
        "two_concurrent": {
            "statuses": sorted(statuses),
            "peak_over_idle_mb": round((double - idle) / MB, 1),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=9, help="CPU pairs per photo")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--cpu-only", action="store_true", help="skip the memory measurement")
    args = parser.parse_args()
    if args.cpu_only:
        text = json.dumps({"cpu": cpu_phase(args.repeat)}, ensure_ascii=False, indent=2)
        print(text)
        if args.json:
            args.json.write_text(text + "\n")
        return 0

    settings = Settings(_env_file=None)
    with tempfile.TemporaryDirectory() as folder:
        store = PhotoStore(
            Path(folder),
            max_bytes=settings.max_photo_bytes,
            memory_budget=settings.photo_memory_bytes,
        )
        name, photo, estimate = worst_png(store)
    results: dict[str, Any] = {
        "cpu": cpu_phase(args.repeat),
        "worst_png": {
            "image": name,
            "file_kb": round(len(photo) / 1024, 1),
            "estimate_mb": round(estimate / MB, 1),
            "memory_budget_mb": settings.photo_memory_mb,
        },
    }
    results["server_memory"] = memory_phase(photo)
    text = json.dumps(results, ensure_ascii=False, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
