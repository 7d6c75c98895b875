"""Peak memory of the real photo code on the worst inputs the limits allow (issue 7, finding 3).

Each case runs in a fresh interpreter, whose peak resident memory (VmHWM, reset just before
processing) says what the photo cost. Accepted photos must stay within the estimate made
from their header (what they reserve from the memory budget); refused ones must cost
almost nothing. Linux only (/proc).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from helpdesk.photos import DEFAULT_MEMORY_BUDGET
from helpdesk.settings import ROOT
from tests.test_photos import png_chunk, png_of_zeros

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc"
)

MB = 1024 * 1024
# What a refused upload may cost: the interpreter's own noise, no pixel buffer.
REFUSED_MB = 16
# Allocator rounding and the interpreter's own objects, beyond the estimate.
SLACK_MB = 4

PROBE = """
import json, re, sys, time
from pathlib import Path
from helpdesk.photos import PhotoError, PhotoStore

def status(name):
    text = Path("/proc/self/status").read_text()
    return int(re.search(name + r":\\s+(\\d+)", text).group(1)) * 1024

data = Path(sys.argv[1]).read_bytes()
store = PhotoStore(Path(sys.argv[2]))
Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
before = status("VmRSS")
started = time.process_time()
estimate = None
try:
    estimate = store.inspect(data, field_label="全体が分かる写真").memory
    photo = store.process(data, filename="x", field_label="全体が分かる写真")
    outcome = {"size": [photo.width, photo.height], "message": None}
except PhotoError as exc:
    outcome = {"size": None, "message": exc.message}
outcome["cpu"] = time.process_time() - started
outcome["grown"] = status("VmHWM") - before
outcome["estimate"] = estimate
print(json.dumps(outcome, ensure_ascii=False))
"""


def probe(tmp_path: Path, data: bytes) -> dict[str, object]:
    path = tmp_path / "upload"
    path.write_bytes(data)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), str(tmp_path / "media")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout)


def _save(image: Image.Image, format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **params)
    return buffer.getvalue()


def _shapes(size: tuple[int, int], mode: str) -> Image.Image:
    """A flat image with a few shapes: compresses like a screenshot, decodes like a photo."""
    image = Image.new(mode, size, "white" if mode != "P" else 1)
    for index in range(40):
        x, y = index * 811 % size[0], index * 467 % size[1]
        color: object = index % 200 if mode == "P" else (index * 5 % 256, 90, 200, 255)[: len(mode)]
        image.paste(color, (x, y, min(x + 400, size[0]), min(y + 300, size[1])))
    return image


def text_bomb() -> bytes:
    """A small valid PNG with 200 zTXt chunks of a megabyte each once inflated, and an iCCP
    chunk that inflates to 30 MB."""
    base = _save(Image.new("RGB", (64, 64), "red"), "PNG")
    megabyte = PngImagePlugin.zlib.compress(b"a" * (1024 * 1024), 9)
    ztxt = b"".join(png_chunk(b"zTXt", b"Comment\0\0" + megabyte) for _ in range(200))
    iccp = png_chunk(b"iCCP", b"ICC\0\0" + PngImagePlugin.zlib.compress(bytes(30 * MB), 9))
    return base[:33] + iccp + ztxt + base[33:]  # after IHDR


def animated(format: str, frames: int) -> bytes:
    images = [Image.new("RGB", (64, 64), (index % 256, 0, 0)) for index in range(frames)]
    return _save(images[0], format, save_all=True, append_images=images[1:])


def progressive_full_chroma() -> bytes:
    return _save(_shapes((4032, 3024), "RGB"), "JPEG", quality=90, progressive=True, subsampling=0)


def heic_12mp() -> bytes:
    return _save(
        _shapes((4032, 3024), "RGB"), "HEIF", quality=60, enc_params={"preset": "ultrafast"}
    )


def heic_24mp() -> bytes:
    """An iPhone 15's default resolution."""
    fast = {"preset": "ultrafast"}  # x265's fastest preset: the decoder's work is the same
    return _save(_shapes((5712, 4284), "RGB"), "HEIF", quality=60, enc_params=fast)


ACCEPTED: dict[str, Callable[[], bytes]] = {
    # 20:1 at 39.2 million pixels: the most elongated shape at the pixel limit.
    "tall-28000x1400-grey": lambda: png_of_zeros(1400, 28_000, color_type=0, bit_depth=8),
    "wide-28000x1400-rgb": lambda: png_of_zeros(28_000, 1400, color_type=2, bit_depth=8),
    "16bit-rgba-5000x4000": lambda: png_of_zeros(5000, 4000, color_type=6, bit_depth=16),
    "16bit-grey-6000x6000": lambda: png_of_zeros(6000, 6000, color_type=0, bit_depth=16),
    "palette-transparency-6000x5000": lambda: _save(
        _shapes((6000, 5000), "P"), "PNG", transparency=0
    ),
    "cmyk-jpeg-6000x4000": lambda: _save(_shapes((6000, 4000), "CMYK"), "JPEG", quality=90),
    "progressive-444-jpeg-12mp": progressive_full_chroma,
    "heic-12mp": heic_12mp,
    "heic-24mp": heic_24mp,
}

REFUSED: dict[str, tuple[Callable[[], bytes], str]] = {
    "1x39.9M-16bit-grey": (
        lambda: png_of_zeros(1, 39_900_000, color_type=0, bit_depth=16),
        "縦横の比率",
    ),
    "rgba-7000x5700-over-budget": (
        lambda: png_of_zeros(7000, 5700, color_type=6, bit_depth=8),
        "大きすぎて処理できません",
    ),
    "apng-2000-frames": (lambda: animated("PNG", 2000), "動かない画像"),
    "webp-500-frames": (lambda: animated("WEBP", 500), "動かない画像"),
    "ztxt-iccp-bomb": (text_bomb, "読み込めません"),
    "1bit-20000x20000": (
        lambda: png_of_zeros(20_000, 20_000, color_type=0, bit_depth=1),
        "画素数が大きすぎます",
    ),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_accepted_worst_cases_stay_within_their_estimate(tmp_path: Path, name: str) -> None:
    outcome = probe(tmp_path, ACCEPTED[name]())

    assert outcome["message"] is None, outcome
    estimate = int(outcome["estimate"])  # type: ignore[call-overload]
    grown = int(outcome["grown"])  # type: ignore[call-overload]
    assert estimate <= DEFAULT_MEMORY_BUDGET
    assert grown <= estimate + SLACK_MB * MB, (
        f"{name}: {grown / MB:.0f} MB used, {estimate / MB:.0f} MB estimated"
    )
    assert max(outcome["size"]) <= 4096  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_worst_cases_cost_almost_nothing(tmp_path: Path, name: str) -> None:
    make, expected = REFUSED[name]
    outcome = probe(tmp_path, make())

    assert outcome["message"] and expected in str(outcome["message"]), outcome
    assert "「全体が分かる写真」" in str(outcome["message"])
    assert int(outcome["grown"]) < REFUSED_MB * MB, outcome  # type: ignore[call-overload]
    assert float(outcome["cpu"]) < 1.0, outcome  # type: ignore[arg-type]
    assert not (tmp_path / "media").exists() or not any((tmp_path / "media").rglob("*.jpg"))
