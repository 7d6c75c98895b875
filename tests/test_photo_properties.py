"""Property-based tests of the photo checks (Hypothesis).

Stated bounds, for any input up to the size limits:

- ``inspect`` and ``process`` raise nothing but ``PhotoError`` (with a Japanese message
  naming the field), and never store anything for an input they refuse.
- ``inspect`` reads the header only: under 50 ms of CPU and 8 MB of memory for any input.
- An accepted photo's peak memory stays within the estimate it reserves from the budget
  (measured here in-process with /proc's high-water mark; the worst cases at the limits
  run in subprocesses in test_photo_memory.py), and its CPU time within 0.3 s per
  megapixel decoded plus 0.5 s.
"""

from __future__ import annotations

import io
import re
import struct
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from helpdesk.photos import PhotoError, PhotoStore, StoredPhoto
from tests.test_photos import heic, phone_jpeg, png_chunk, png_of_zeros, png_with_alpha

LABEL = "不良部分が鮮明に見える写真"
MB = 1024 * 1024
PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,  # nothing written into the repository
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HAS_PROC = Path("/proc/self/clear_refs").exists()


def _save(image: Image.Image, format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **params)
    return buffer.getvalue()


SEEDS = {
    "jpeg": phone_jpeg((96, 64)),
    "png": png_with_alpha((80, 60)),
    "heic": heic((64, 48)),
    "webp": _save(Image.new("RGBA", (50, 40), (0, 0, 255, 128)), "WEBP"),
    "mpo": _save(
        Image.new("RGB", (64, 48), "red"),
        "MPO",
        save_all=True,
        append_images=[Image.new("RGB", (32, 24), "blue")],
    ),
    "progressive": _save(Image.new("RGB", (64, 48), "green"), "JPEG", progressive=True),
    "palette": _save(Image.new("P", (64, 48), 3), "PNG", transparency=3),
    "grey16": png_of_zeros(64, 48, color_type=0, bit_depth=16),
}


def _status(name: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(name + r":\s+(\d+)", text)
    assert match
    return int(match.group(1)) * 1024


def _outcome(store: PhotoStore, data: bytes) -> StoredPhoto | PhotoError:
    """What the store does with ``data``: a stored photo or a PhotoError, nothing else."""
    started = time.process_time()
    try:
        store.inspect(data, field_label=LABEL)
    except PhotoError as exc:
        assert time.process_time() - started < 0.05
        _assert_refusal(exc)
        with pytest.raises(PhotoError):
            store.process(data, filename="x", field_label=LABEL)
        return exc
    assert time.process_time() - started < 0.05
    try:
        return store.process(data, filename="x", field_label=LABEL)
    except PhotoError as exc:
        _assert_refusal(exc)
        return exc


def _assert_refusal(error: PhotoError) -> None:
    assert error.field_label == LABEL and f"「{LABEL}」" in error.message
    assert error.message.endswith("。")


def _stored(store: PhotoStore) -> set[Path]:
    return {path for path in store.root.rglob("*") if path.is_file()}


@PROPERTY_SETTINGS
@given(data=st.binary(max_size=4096))
def test_arbitrary_bytes_never_crash_the_checks(tmp_path: Path, data: bytes) -> None:
    store = PhotoStore(tmp_path / "bytes")
    before = _stored(store) if store.root.exists() else set()

    outcome = _outcome(store, data)

    if isinstance(outcome, PhotoError):
        assert (_stored(store) if store.root.exists() else set()) == before


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A real image of some format, then truncated, overwritten or spliced."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["truncate", "overwrite", "insert", "flip"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "truncate":
            del data[position:]
        elif action == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[position : position + len(chunk)] = chunk
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=64))
        elif data:
            data[position] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


@PROPERTY_SETTINGS
@given(data=damaged())
def test_damaged_images_are_refused_or_cleaned_never_crash(tmp_path: Path, data: bytes) -> None:
    store = PhotoStore(tmp_path / "damaged")

    outcome = _outcome(store, data)

    if isinstance(outcome, StoredPhoto):
        stored = Image.open(io.BytesIO(store.open(outcome.digest)))
        stored.load()  # what was stored is a clean, complete image
        assert stored.format in ("JPEG", "PNG") and not stored.getexif()


PNG_KINDS = [(0, 1), (0, 8), (0, 16), (2, 8), (2, 16), (4, 8), (4, 16), (6, 8), (6, 16)]


def png_header(width: int, height: int, color_type: int, bit_depth: int) -> bytes:
    """The header of such a PNG, without its pixels: all that ``inspect`` reads."""
    whole = png_of_zeros(1, 1, color_type=color_type, bit_depth=bit_depth)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return whole[:8] + png_chunk(b"IHDR", ihdr) + whole[33:]


@pytest.mark.skipif(not HAS_PROC, reason="needs Linux /proc")
@settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    width=st.integers(1, 40_000),
    height=st.integers(1, 40_000),
    kind=st.sampled_from(PNG_KINDS),
)
def test_memory_and_time_stay_within_the_stated_bounds(
    tmp_path: Path, width: int, height: int, kind: tuple[int, int]
) -> None:
    # Any PNG depth and colour type up to 1.6 billion pixels: refused from the header when
    # over a limit, otherwise decoded and cleaned within its memory estimate.
    color_type, bit_depth = kind
    store = PhotoStore(tmp_path / "bounds")
    Path("/proc/self/clear_refs").write_text("5")
    before = _status("VmRSS")
    started = time.process_time()
    try:
        check = store.inspect(png_header(width, height, color_type, bit_depth), field_label=LABEL)
    except PhotoError:
        assert time.process_time() - started < 0.05
        assert _status("VmHWM") - before < 8 * MB
        event("refused from the header")
        return
    assert time.process_time() - started < 0.05
    event("decoded and cleaned")
    data = png_of_zeros(width, height, color_type=color_type, bit_depth=bit_depth)
    Path("/proc/self/clear_refs").write_text("5")
    before = _status("VmRSS")
    started = time.process_time()
    photo = store.process(data, filename="x", field_label=LABEL)
    seconds = time.process_time() - started
    grown = _status("VmHWM") - before

    assert grown <= check.memory, f"{grown / MB:.0f} MB used, {check.memory / MB:.0f} estimated"
    assert seconds < 0.3 * width * height / 1e6 + 0.5
    assert max(photo.width, photo.height) <= 4096
