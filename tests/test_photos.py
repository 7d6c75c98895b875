"""The photo store: real images made here with Pillow and pillow-heif, and real bad files."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import pillow_heif
import pytest
from PIL import ExifTags, Image, ImageChops, ImageFilter, ImageStat, PngImagePlugin

from helpdesk import photos as photo_module
from helpdesk.photos import PhotoError, PhotoStore, StoredPhoto, sanitize_filename
from helpdesk.settings import ROOT

LABEL = "全体が分かる写真"
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    b"xref\n0 3\n0000000000 65535 f \n0000000009 00000 n \n0000000052 00000 n \n"
    b"trailer<</Size 3/Root 1 0 R>>\nstartxref\n101\n%%EOF\n"
)
SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b'<rect width="10" height="10" fill="red"/></svg>'
)
# Tokyo Station, as a phone would record it.
GPS = {
    ExifTags.GPS.GPSLatitudeRef: "N",
    ExifTags.GPS.GPSLatitude: (35.0, 40.0, 52.0),
    ExifTags.GPS.GPSLongitudeRef: "E",
    ExifTags.GPS.GPSLongitude: (139.0, 46.0, 1.0),
}


# -- real files -------------------------------------------------------------------------------


def _save(image: Image.Image, format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **params)
    return buffer.getvalue()


def _striped(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """An image whose left half is red and right half blue: shows a rotation."""
    image = Image.new(mode, size, "red")
    image.paste("blue", (size[0] // 2, 0, size[0], size[1]))
    return image


def phone_jpeg(size: tuple[int, int] = (640, 480), *, orientation: int = 6) -> bytes:
    """A JPEG carrying what phones record: make, model, orientation, GPS, XMP, a comment."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Apple"
    exif[ExifTags.Base.Model] = "iPhone 15"
    exif[ExifTags.Base.Orientation] = orientation
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(GPS)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><secret>SECRET-XMP</secret></x:xmpmeta>'
    return _save(_striped(size), "JPEG", quality=90, exif=exif, xmp=xmp, comment=b"SECRET-COM")


def heic(size: tuple[int, int] = (400, 300)) -> bytes:
    return _save(Image.new("RGB", size, "teal"), "HEIF")


def png_with_alpha(size: tuple[int, int] = (300, 200)) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "SECRET-TEXT")
    info.add_itxt("Description", "SECRET-ITXT")
    image = Image.new("RGBA", size, (200, 30, 30, 128))
    exif = Image.Exif()
    exif[ExifTags.Base.Software] = "SECRET-EXIF"
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(GPS)
    return _save(image, "PNG", pnginfo=info, exif=exif)


def swapped_profile() -> bytes:
    """A minimal ICC v2 RGB profile whose red and blue primaries are sRGB's blue and red.

    Converting through it turns red into blue, which shows a conversion really happened.
    """

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + bytes(4) + s15(x) + s15(y) + s15(z)

    # sRGB's colorants adapted to D50, as in every sRGB profile.
    red, green, blue = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)
    linear = b"curv" + bytes(4) + struct.pack(">I", 0)
    tags = [
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(*blue)),
        (b"gXYZ", xyz(*green)),
        (b"bXYZ", xyz(*red)),
        (b"rTRC", linear),
        (b"gTRC", linear),
        (b"bTRC", linear),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body + bytes(-len(body) % 4)
    header = (
        struct.pack(">I", offset + len(data))
        + bytes(4)
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + bytes(12)
        + b"acsp"
        + bytes(28)
        + s15(0.9642)
        + s15(1.0)
        + s15(0.8249)
    )
    return header.ljust(128, b"\0") + struct.pack(">I", len(tags)) + table + data


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_of_zeros(width: int, height: int, *, color_type: int, bit_depth: int) -> bytes:
    """A valid PNG of one colour, built row by row so that no pixel buffer is ever allocated.

    Zeros compress about a thousand to one: a 20000×20000 image is a few tens of KB, the
    shape of a decompression bomb.
    """
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    row = bytes(1 + (width * channels * bit_depth + 7) // 8)  # filter byte 0, then pixels
    compressor = zlib.compressobj(9)
    batch = max(1, 1_000_000 // len(row))  # rows compressed a megabyte at a time
    full, rest = divmod(height, batch)
    chunks = [compressor.compress(row * batch) for _ in range(full)]
    idat = b"".join(chunks) + compressor.compress(row * rest) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    chunks = png_chunk(b"IHDR", header)
    if color_type == 3:
        chunks += png_chunk(b"PLTE", b"\x00\x00\x00\xff\xff\xff")
    chunks += png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def jpeg_segments(data: bytes) -> list[int]:
    """The markers of a JPEG's header segments, up to the start of the scan."""
    assert data[:2] == b"\xff\xd8"
    markers, offset = [], 2
    while True:
        marker = data[offset + 1]
        markers.append(marker)
        if marker == 0xDA:  # SOS: entropy-coded data follows
            return markers
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        offset += 2 + length


def png_chunk_types(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    kinds, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kinds.append(data[offset + 4 : offset + 8])
        offset += 12 + length
    return kinds


def stored_image(store: PhotoStore, digest: str) -> Image.Image:
    image = Image.open(io.BytesIO(store.open(digest)))
    image.load()
    return image


def stored_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


@pytest.fixture
def store(tmp_path: Path) -> PhotoStore:
    return PhotoStore(tmp_path / "media")


# -- cleaning ---------------------------------------------------------------------------------


def test_jpeg_loses_exif_gps_xmp_and_comment_and_is_turned_upright(store: PhotoStore) -> None:
    data = phone_jpeg((640, 480), orientation=6)
    # The upload really carries what must go.
    original = Image.open(io.BytesIO(data))
    assert original.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert b"Exif" in data and b"SECRET-XMP" in data and b"SECRET-COM" in data

    photo = store.process(data, filename="IMG_0001.JPG", field_label=LABEL)

    stored = store.open(photo.digest)
    assert photo.content_type == "image/jpeg"
    assert photo.size == len(stored)
    # Orientation 6 (rotate 90° clockwise): the landscape capture is a portrait photo.
    assert (photo.width, photo.height) == (480, 640)
    image = Image.open(io.BytesIO(stored))
    assert image.format == "JPEG" and image.size == (480, 640)
    # Red was the left half; turned clockwise it is the top half.
    top, bottom = image.getpixel((240, 100)), image.getpixel((240, 540))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60
    assert len(image.getexif()) == 0
    assert not image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert b"Exif" not in stored and b"SECRET" not in stored and b"http://ns.adobe" not in stored
    # Only JFIF (APP0), tables and the frame: no APP1 (EXIF/XMP), APP2 (ICC), APP13, COM.
    markers = jpeg_segments(stored)
    assert not [m for m in markers if 0xE1 <= m <= 0xEF or m == 0xFE], [hex(m) for m in markers]


# What the four quadrants of the picture as seen (upright) show, for each EXIF orientation of
# a sensor image whose quadrants are red (top left), green, blue (bottom left) and yellow.
# From the EXIF specification's table, written out by hand (not from the code under test).
_QUADRANTS_SEEN = {
    1: ("red", "green", "blue", "yellow"),
    2: ("green", "red", "yellow", "blue"),  # mirrored left-right
    3: ("yellow", "blue", "green", "red"),  # turned half-way
    4: ("blue", "yellow", "red", "green"),  # mirrored top-bottom
    5: ("red", "blue", "green", "yellow"),  # mirrored along the main diagonal
    6: ("blue", "red", "yellow", "green"),  # to be turned 90° clockwise (phone held upright)
    7: ("yellow", "green", "blue", "red"),  # mirrored along the other diagonal
    8: ("green", "yellow", "red", "blue"),  # to be turned 90° anticlockwise
}
_RGB = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
}


def _quadrants(image: Image.Image) -> tuple[str, ...]:
    """The colour names nearest to the centres of the top-left, top-right, bottom-left and
    bottom-right quadrants of ``image``."""
    width, height = image.size
    names = []
    for x, y in ((1, 1), (3, 1), (1, 3), (3, 3)):
        pixel = image.convert("RGB").getpixel((x * width // 4, y * height // 4))
        assert isinstance(pixel, tuple)
        names.append(
            min(
                _RGB,
                key=lambda name: sum(abs(a - b) for a, b in zip(_RGB[name], pixel, strict=True)),
            )
        )
    return tuple(names)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_out_upright_without_metadata(
    store: PhotoStore, orientation: int
) -> None:
    sensor = Image.new("RGB", (640, 480), "red")
    sensor.paste("green", (320, 0, 640, 240))
    sensor.paste("blue", (0, 240, 320, 480))
    sensor.paste("yellow", (320, 240, 640, 480))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Apple"
    exif[ExifTags.Base.Orientation] = orientation
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(GPS)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><secret>SECRET-XMP</secret></x:xmpmeta>'
    data = _save(sensor, "JPEG", quality=95, exif=exif, xmp=xmp, comment=b"SECRET-COM")
    assert Image.open(io.BytesIO(data)).getexif()[ExifTags.Base.Orientation] == orientation

    photo = store.process(data, filename="IMG_0001.JPG", field_label=LABEL)

    turned = orientation >= 5  # 5 to 8 swap width and height
    expected_size = (480, 640) if turned else (640, 480)
    assert (photo.width, photo.height) == expected_size
    for digest, size in ((photo.digest, expected_size), (photo.thumb_digest, None)):
        stored = store.open(digest)
        image = stored_image(store, digest)
        assert image.format == "JPEG"
        if size is not None:
            assert image.size == size
        else:  # the thumbnail: the same shape as the photo
            assert (image.width < image.height) == turned
        assert _quadrants(image) == _QUADRANTS_SEEN[orientation]
        assert len(image.getexif()) == 0
        assert b"Exif" not in stored and b"SECRET" not in stored
        markers = jpeg_segments(stored)
        assert not [m for m in markers if 0xE1 <= m <= 0xEF or m == 0xFE], [hex(m) for m in markers]


def test_transparent_png_with_an_orientation_is_stored_upright(store: PhotoStore) -> None:
    sensor = Image.new("RGBA", (640, 480), (255, 0, 0, 128))
    sensor.paste((0, 255, 0, 128), (320, 0, 640, 240))
    sensor.paste((0, 0, 255, 128), (0, 240, 320, 480))
    sensor.paste((255, 255, 0, 128), (320, 240, 640, 480))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    data = _save(sensor, "PNG", exif=exif)

    photo = store.process(data, filename="a.png", field_label=LABEL)

    assert photo.content_type == "image/png"
    image = stored_image(store, photo.digest)
    assert image.format == "PNG" and image.mode == "RGBA" and image.size == (480, 640)
    assert b"eXIf" not in store.open(photo.digest)
    assert _quadrants(image) == _QUADRANTS_SEEN[6]
    thumb = stored_image(store, photo.thumb_digest)
    assert thumb.format == "JPEG" and thumb.width < thumb.height


def test_colour_profile_is_converted_to_srgb_then_dropped(store: PhotoStore) -> None:
    data = _save(Image.new("RGB", (200, 100), "red"), "JPEG", icc_profile=swapped_profile())
    assert Image.open(io.BytesIO(data)).info.get("icc_profile")

    photo = store.process(data, filename="a.jpg", field_label=LABEL)

    stored = store.open(photo.digest)
    image = stored_image(store, photo.digest)
    assert "icc_profile" not in image.info
    assert 0xE2 not in jpeg_segments(stored)
    # Stored as "red" under a profile whose red is sRGB's blue: what the camera saw is blue.
    red, _green, blue = image.getpixel((100, 50))  # type: ignore[misc]
    assert blue > 200 and red < 60


def test_broken_colour_profile_is_only_dropped(store: PhotoStore) -> None:
    data = _save(Image.new("RGB", (200, 100), "red"), "JPEG", icc_profile=b"not a profile")

    photo = store.process(data, filename="a.jpg", field_label=LABEL)

    image = stored_image(store, photo.digest)
    assert "icc_profile" not in image.info
    red, _green, blue = image.getpixel((100, 50))  # type: ignore[misc]
    assert red > 200 and blue < 60


def test_cmyk_jpeg_becomes_rgb(store: PhotoStore) -> None:
    data = _save(Image.new("CMYK", (120, 80), (0, 255, 255, 0)), "JPEG")

    photo = store.process(data, filename="scan.jpg", field_label=LABEL)

    image = stored_image(store, photo.digest)
    assert image.mode == "RGB"
    red, green, blue = image.getpixel((60, 40))  # type: ignore[misc]
    assert red > 200 and green < 60 and blue < 60


def test_heic_is_stored_as_jpeg(store: PhotoStore) -> None:
    data = heic((400, 300))
    assert Image.open(io.BytesIO(data)).format == "HEIF"
    assert pillow_heif.is_supported(data)

    photo = store.process(data, filename="IMG_1234.HEIC", field_label=LABEL)

    assert photo.content_type == "image/jpeg"
    assert (photo.width, photo.height) == (400, 300)
    image = stored_image(store, photo.digest)
    assert image.format == "JPEG" and image.size == (400, 300)
    assert store.path(photo.digest).suffix == ".jpg"


def test_jpeg_with_a_second_picture_keeps_the_first(store: PhotoStore) -> None:
    # MPO: what many phones and cameras save as .jpg, a photo plus a preview.
    data = _save(
        Image.new("RGB", (640, 480), "red"),
        "MPO",
        save_all=True,
        append_images=[Image.new("RGB", (160, 120), "blue")],
    )
    assert Image.open(io.BytesIO(data)).format == "MPO"

    photo = store.process(data, filename="DSC0001.JPG", field_label=LABEL)

    image = stored_image(store, photo.digest)
    assert image.format == "JPEG" and image.size == (640, 480)
    assert getattr(image, "n_frames", 1) == 1
    assert b"MPF" not in store.open(photo.digest)


def test_transparent_png_stays_png_without_metadata(store: PhotoStore) -> None:
    data = png_with_alpha((300, 200))
    assert b"SECRET-TEXT" in data and b"eXIf" in data
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(ExifTags.IFD.GPSInfo)

    photo = store.process(data, filename="screenshot.png", field_label=LABEL)

    assert photo.content_type == "image/png"
    stored = store.open(photo.digest)
    image = Image.open(io.BytesIO(stored))
    assert image.format == "PNG" and image.mode == "RGBA" and image.size == (300, 200)
    assert image.getpixel((10, 10)) == (200, 30, 30, 128)
    assert set(png_chunk_types(stored)) <= {b"IHDR", b"IDAT", b"IEND"}
    assert b"SECRET" not in stored
    assert store.path(photo.digest).suffix == ".png"


def test_opaque_png_becomes_jpeg(store: PhotoStore) -> None:
    data = _save(Image.new("RGBA", (300, 200), (10, 120, 10, 255)), "PNG")

    photo = store.process(data, filename="photo.png", field_label=LABEL)

    assert photo.content_type == "image/jpeg"
    assert stored_image(store, photo.digest).format == "JPEG"


def test_webp_with_alpha_becomes_jpeg_over_white(store: PhotoStore) -> None:
    image = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    image.paste((0, 0, 255, 255), (0, 0, 150, 200))
    data = _save(image, "WEBP", lossless=True)

    photo = store.process(data, filename="photo.webp", field_label=LABEL)

    assert photo.content_type == "image/jpeg"
    stored = stored_image(store, photo.digest)
    assert stored.format == "JPEG" and stored.size == (300, 200)
    assert min(stored.getpixel((250, 100))) > 240  # type: ignore[type-var]  # white, not black
    red, _green, blue = stored.getpixel((50, 100))  # type: ignore[misc]
    assert blue > 200 and red < 60


def test_large_images_are_downscaled_to_4096(store: PhotoStore) -> None:
    data = _save(Image.new("RGB", (5000, 1000), "gray"), "JPEG")

    photo = store.process(data, filename="panorama.jpg", field_label=LABEL)

    assert (photo.width, photo.height) == (4096, 819)
    assert stored_image(store, photo.digest).size == (4096, 819)


def test_thumbnail_is_a_jpeg_with_the_long_side_thumb_size(tmp_path: Path) -> None:
    store = PhotoStore(tmp_path, thumb_size=200)

    photo = store.process(phone_jpeg((900, 600), orientation=1), filename="a", field_label=LABEL)

    assert photo.thumb_digest != photo.digest
    thumb = stored_image(store, photo.thumb_digest)
    assert thumb.format == "JPEG"
    assert thumb.size == (200, 133)
    assert len(thumb.getexif()) == 0


def test_thumbnail_of_a_transparent_png_is_jpeg(store: PhotoStore) -> None:
    photo = store.process(png_with_alpha((1000, 500)), filename="a.png", field_label=LABEL)

    thumb = stored_image(store, photo.thumb_digest)
    assert thumb.format == "JPEG" and thumb.size == (320, 160)
    assert store.path(photo.thumb_digest).suffix == ".jpg"


# -- refusals ---------------------------------------------------------------------------------


def _animated_png() -> bytes:
    frames = [Image.new("RGB", (40, 40), color) for color in ("red", "blue")]
    return _save(frames[0], "PNG", save_all=True, append_images=frames[1:])


def _animated_webp() -> bytes:
    frames = [Image.new("RGB", (40, 40), color) for color in ("red", "blue")]
    return _save(frames[0], "WEBP", save_all=True, append_images=frames[1:])


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(PDF, "JPEG・PNG・WebP・HEIC形式", id="pdf-named-jpg"),
        pytest.param(SVG, "JPEG・PNG・WebP・HEIC形式", id="svg"),
        pytest.param("注文番号は12345です。\n".encode(), "JPEG・PNG・WebP・HEIC形式", id="text"),
        pytest.param(
            _save(Image.new("RGB", (40, 40)), "GIF"), "JPEG・PNG・WebP・HEIC形式", id="gif"
        ),
        pytest.param(
            _save(Image.new("RGB", (40, 40)), "TIFF"), "JPEG・PNG・WebP・HEIC形式", id="tiff"
        ),
        pytest.param(phone_jpeg()[:2000], "読み込めません", id="truncated-jpeg"),
        pytest.param(b"", "空です", id="empty"),
        pytest.param(
            png_of_zeros(0, 10, color_type=2, bit_depth=8), "形式の画像を", id="zero-width"
        ),
        pytest.param(_animated_png(), "動かない画像", id="animated-png"),
        pytest.param(_animated_webp(), "動かない画像", id="animated-webp"),
    ],
)
def test_refused_with_a_message_naming_the_field(
    store: PhotoStore, data: bytes, expected: str
) -> None:
    with pytest.raises(PhotoError) as raised:
        store.process(data, filename="photo.jpg", field_label=LABEL)

    assert f"「{LABEL}」" in raised.value.message
    assert expected in raised.value.message
    assert raised.value.message.endswith("。")
    assert raised.value.field_label == LABEL
    assert isinstance(raised.value, ValueError)
    assert stored_files(store.root) == []


def test_truncated_jpeg_is_refused_even_when_the_header_is_complete(store: PhotoStore) -> None:
    whole = _save(Image.effect_noise((800, 600), 64).convert("RGB"), "JPEG", quality=95)
    cut = whole[: len(whole) * 2 // 3]
    assert Image.open(io.BytesIO(cut)).size == (800, 600)  # the header alone looks fine

    with pytest.raises(PhotoError, match=LABEL):
        store.process(cut, filename="cut.jpg", field_label=LABEL)


def test_over_max_bytes_is_refused_with_the_limit_in_mb(tmp_path: Path) -> None:
    store = PhotoStore(tmp_path, max_bytes=512 * 1024)
    data = _save(Image.effect_noise((800, 800), 100).convert("RGB"), "JPEG", quality=100)
    assert len(data) > store.max_bytes

    with pytest.raises(PhotoError) as raised:
        store.process(data, filename="big.jpg", field_label=LABEL)

    assert "0.5MB" in raised.value.message and LABEL in raised.value.message
    # Just under the limit is fine.
    PhotoStore(tmp_path, max_bytes=len(data)).process(data, filename="a", field_label=LABEL)


def test_default_limit_is_10_mb(tmp_path: Path) -> None:
    with pytest.raises(PhotoError, match="10MB以下"):
        PhotoStore(tmp_path).process(
            b"\xff\xd8" + bytes(10 * 1024 * 1024), filename="a.jpg", field_label=LABEL
        )


def test_png_builder_makes_real_images(store: PhotoStore) -> None:
    """The bombs below are valid PNGs: refusing them is about size, not corruption."""
    for color_type, bit_depth in ((0, 1), (2, 8), (3, 1)):
        data = png_of_zeros(64, 48, color_type=color_type, bit_depth=bit_depth)
        Image.open(io.BytesIO(data)).load()
        photo = store.process(data, filename="small.png", field_label=LABEL)
        assert (photo.width, photo.height) == (64, 48)


BOMB_PROBE = """
import json, resource, sys, time
from pathlib import Path
from helpdesk.photos import PhotoError, PhotoStore

data = Path(sys.argv[1]).read_bytes()
store = PhotoStore(Path(sys.argv[2]), max_pixels=int(sys.argv[3]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    store.process(data, filename="bomb.png", field_label="全体が分かる写真")
    message = None
except PhotoError as exc:
    message = exc.message
seconds = time.perf_counter() - start
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"message": message, "seconds": seconds, "grown_kb": grown}))
"""


@pytest.mark.parametrize(
    ("width", "height", "color_type", "bit_depth", "max_pixels"),
    [
        # 400 million 1-bit pixels: past twice Pillow's own limit, its error is ours too.
        pytest.param(20_000, 20_000, 0, 1, 40_000_000, id="1bit-20000x20000"),
        pytest.param(20_000, 20_000, 3, 1, 40_000_000, id="palette-20000x20000"),
        # 64 million RGB pixels (256 MB decoded): within Pillow's limit, over max_pixels.
        pytest.param(8_000, 8_000, 2, 8, 40_000_000, id="rgb-8000x8000"),
        # A store configured tighter than Pillow: 36 million pixels over 20 million.
        pytest.param(6_000, 6_000, 2, 8, 20_000_000, id="rgb-6000x6000-tight-store"),
    ],
)
def test_decompression_bomb_is_refused_before_decoding(
    tmp_path: Path, width: int, height: int, color_type: int, bit_depth: int, max_pixels: int
) -> None:
    bomb = png_of_zeros(width, height, color_type=color_type, bit_depth=bit_depth)
    assert len(bomb) < 300_000
    bomb_path = tmp_path / "bomb.png"
    bomb_path.write_bytes(bomb)

    # A fresh interpreter: its peak memory says what processing the bomb cost.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            BOMB_PROBE,
            str(bomb_path),
            str(tmp_path / "media"),
            str(max_pixels),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    outcome = json.loads(result.stdout)

    assert outcome["message"] is not None, "the bomb was accepted"
    assert "画素数が大きすぎます" in outcome["message"]
    assert "全体が分かる写真" in outcome["message"]
    assert outcome["grown_kb"] < 100 * 1024, outcome
    assert outcome["seconds"] < 1.0, outcome
    assert not (tmp_path / "media").exists() or stored_files(tmp_path / "media") == []


def test_pillow_bomb_warning_is_an_error_even_when_warnings_are_ignored(tmp_path: Path) -> None:
    # 100 million pixels: Pillow only warns (over MAX_IMAGE_PIXELS, under twice that). With
    # a store that would allow it, the warning alone must stop the upload.
    store = PhotoStore(tmp_path, max_pixels=10**9)
    bomb = png_of_zeros(10_000, 10_000, color_type=0, bit_depth=1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(PhotoError, match="画素数が大きすぎます"):
            store.process(bomb, filename="bomb.png", field_label=LABEL)


# -- storage ----------------------------------------------------------------------------------


def test_same_image_twice_is_one_file(store: PhotoStore) -> None:
    data = phone_jpeg()

    first = store.process(data, filename="a.jpg", field_label=LABEL)
    second = store.process(data, filename="b.jpg", field_label="不良部分が鮮明に見える写真")

    assert first.digest == second.digest
    assert first.thumb_digest == second.thumb_digest
    assert second.original_filename == "b.jpg"
    files = stored_files(store.root)
    assert files == sorted([store.path(first.digest), store.path(first.thumb_digest)])


def test_files_are_content_addressed_private_and_atomic(store: PhotoStore) -> None:
    import hashlib

    photo = store.process(phone_jpeg(), filename="../../etc/passwd", field_label=LABEL)

    path = store.path(photo.digest)
    assert path == store.root / photo.digest[:2] / photo.digest[2:4] / f"{photo.digest}.jpg"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == photo.digest
    thumb = store.path(photo.thumb_digest)
    assert hashlib.sha256(thumb.read_bytes()).hexdigest() == photo.thumb_digest
    for file in (path, thumb):
        assert stat.S_IMODE(file.stat().st_mode) == 0o640
    # No temporary files left behind, nothing named after the upload.
    assert stored_files(store.root) == sorted([path, thumb])
    assert photo.original_filename == "passwd.jpg"  # named by what is stored


def test_stored_photo_is_plain_data(store: PhotoStore) -> None:
    photo = store.process(heic(), filename="IMG.HEIC", field_label=LABEL)

    assert isinstance(photo, StoredPhoto)
    with pytest.raises(AttributeError):
        photo.digest = "0" * 64  # type: ignore[misc]
    assert len(photo.digest) == 64 and int(photo.digest, 16) >= 0


@pytest.mark.parametrize(
    "digest",
    [
        "../etc/passwd",
        "../../" + "a" * 58,
        "a" * 63,
        "a" * 65,
        "A" * 64,
        "g" * 64,
        "a" * 64 + "\n",
        "a" * 62 + "/.",
        "",
        "/" + "a" * 63,
    ],
)
def test_path_refuses_malformed_digests(store: PhotoStore, digest: str) -> None:
    with pytest.raises((ValueError, KeyError)):
        store.path(digest)
    with pytest.raises((ValueError, KeyError)):
        store.open(digest)
    with pytest.raises((ValueError, KeyError)):
        store.delete(digest)


def test_open_and_delete(store: PhotoStore) -> None:
    photo = store.process(png_with_alpha(), filename="a.png", field_label=LABEL)
    assert store.open(photo.digest)[:8] == b"\x89PNG\r\n\x1a\n"

    store.delete(photo.digest)

    assert not store.path(photo.digest).exists()
    with pytest.raises(KeyError):
        store.open(photo.digest)
    store.delete(photo.digest)  # already gone: nothing to do
    assert store.path(photo.thumb_digest).exists()


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("IMG_0001.HEIC", "IMG_0001.HEIC"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\山田\\Pictures\\不良箇所.jpg", "不良箇所.jpg"),
        ("写真\x00\x1b[31m.jpg", "写真[31m.jpg"),
        ("evil\u202egpj.exe", "evilgpj.exe"),
        (".htaccess", "htaccess"),
        ("", "photo"),
        ("/", "photo"),
        ("あ" * 150 + ".jpeg", "あ" * 95 + ".jpeg"),
    ],
)
def test_filename_is_sanitized_for_display(filename: str, expected: str) -> None:
    cleaned = sanitize_filename(filename)

    assert cleaned == expected
    assert len(cleaned) <= 100


def test_process_uses_the_sanitized_filename(store: PhotoStore) -> None:
    photo = store.process(heic(), filename="a/b\\c\x07" + "x" * 200, field_label=LABEL)

    assert photo.original_filename == "c" + "x" * 95 + ".jpg"


def test_the_filename_does_not_decide_the_format(store: PhotoStore) -> None:
    photo = store.process(png_with_alpha(), filename="photo.heic", field_label=LABEL)

    assert photo.content_type == "image/png"
    with pytest.raises(PhotoError):
        store.process(PDF, filename="photo.png", field_label=LABEL)


# -- shape, depth and memory, checked from the header (issue 7, finding 3) ---------------------


def _timed_inspect(store: PhotoStore, data: bytes) -> tuple[PhotoError, float]:
    started = time.perf_counter()
    with pytest.raises(PhotoError) as raised:
        store.inspect(data, field_label=LABEL)
    return raised.value, time.perf_counter() - started


@pytest.mark.parametrize(
    ("width", "height", "color_type", "bit_depth"),
    [
        # 114 KB that cost 1.3 GB and 2 s of CPU before: 16-bit grey, one pixel wide.
        pytest.param(1, 39_900_000, 0, 16, id="1x39.9M-16bit-grey"),
        pytest.param(39_900_000, 1, 0, 16, id="39.9Mx1-16bit-grey"),
        pytest.param(200, 100_000, 6, 16, id="200x100000-16bit-rgba"),
        pytest.param(30_000, 1_000, 2, 8, id="30000x1000-rgb"),
    ],
)
def test_extreme_shapes_are_refused_from_the_header(
    store: PhotoStore, width: int, height: int, color_type: int, bit_depth: int
) -> None:
    bomb = png_of_zeros(width, height, color_type=color_type, bit_depth=bit_depth)
    assert width * height <= store.max_pixels and len(bomb) < 300_000

    error, seconds = _timed_inspect(store, bomb)
    with pytest.raises(PhotoError) as processed:
        store.process(bomb, filename="bomb.png", field_label=LABEL)

    for message in (error.message, processed.value.message):
        assert f"「{LABEL}」" in message and "縦横の比率" in message and "20倍まで" in message
    assert seconds < 0.5
    assert stored_files(store.root) == []


def test_aspect_ratio_up_to_twenty_is_accepted(store: PhotoStore) -> None:
    photo = store.process(
        _save(Image.new("RGB", (4000, 200), "gray"), "JPEG"), filename="a", field_label=LABEL
    )
    assert (photo.width, photo.height) == (4000, 200)
    with pytest.raises(PhotoError, match="縦横の比率"):
        store.inspect(_save(Image.new("RGB", (4020, 200), "gray"), "JPEG"), field_label=LABEL)


def test_a_photo_needing_more_memory_than_the_whole_budget_is_refused(tmp_path: Path) -> None:
    store = PhotoStore(tmp_path / "media", memory_budget=64 * 1024 * 1024)
    # 12 megapixels of RGB: about 100 MB to decode and turn upright; 7 KB on disk.
    data = png_of_zeros(4000, 3000, color_type=2, bit_depth=8)

    error, seconds = _timed_inspect(store, data)

    assert error.field_label == LABEL and f"「{LABEL}」" in error.message
    assert "大きすぎて処理できません" in error.message and error.message.endswith("。")
    assert seconds < 0.5
    assert not (tmp_path / "media").exists()
    # The default budget takes it.
    check = PhotoStore(tmp_path / "other").inspect(data, field_label=LABEL)
    assert 64 * 1024 * 1024 < check.memory < 200 * 1024 * 1024


def test_memory_estimate_grows_with_bit_depth_mode_and_codec(store: PhotoStore) -> None:
    def memory(data: bytes) -> int:
        return store.inspect(data, field_label=LABEL).memory

    # Larger than MAX_SIDE: the decoded image is alive while it is fitted.
    grey8 = memory(png_of_zeros(6000, 4000, color_type=0, bit_depth=8))
    grey16 = memory(png_of_zeros(6000, 4000, color_type=0, bit_depth=16))
    rgba16 = memory(png_of_zeros(6000, 4000, color_type=6, bit_depth=16))
    assert grey8 < grey16 < rgba16
    assert 0 < grey16 - grey8 <= 6000 * 4000  # at most one more byte a pixel
    from helpdesk.photos import _jpeg_coefficient_bytes

    # A progressive JPEG is read whole into 16-bit coefficients before any pixel comes out:
    # 3 bytes a pixel in 4:2:0, 6 in 4:4:4, whatever scale it is decoded at.
    image = Image.effect_noise((3000, 2000), 40).convert("RGB")
    pixels = 3000 * 2000
    assert _jpeg_coefficient_bytes(_save(image, "JPEG"), 3000, 2000) == 0
    progressive = _save(image, "JPEG", progressive=True)
    assert 3.0 <= _jpeg_coefficient_bytes(progressive, 3000, 2000) / pixels < 3.1
    full_chroma = _save(image, "JPEG", progressive=True, subsampling=0)
    assert 6.0 <= _jpeg_coefficient_bytes(full_chroma, 3000, 2000) / pixels < 6.1
    # A header that cannot be walked is costed as the worst case.
    assert _jpeg_coefficient_bytes(b"\xff\xd8garbage", 3000, 2000) == 8 * pixels


def test_inspect_reads_the_header_only_and_stores_nothing(store: PhotoStore) -> None:
    check = store.inspect(phone_jpeg((640, 480)), field_label=LABEL)

    assert (check.format, check.mode, check.width, check.height, check.scale) == (
        "JPEG",
        "RGB",
        640,
        480,
        1,
    )
    assert 0 < check.memory < 32 * 1024 * 1024
    for data, expected in ((PDF, "JPEG・PNG・WebP・HEIC形式"), (b"", "空です")):
        with pytest.raises(PhotoError, match=expected):
            store.inspect(data, field_label=LABEL)
    # A truncated JPEG passes the header check: only decoding finds it broken.
    whole = _save(Image.effect_noise((800, 600), 64).convert("RGB"), "JPEG", quality=95)
    store.inspect(whole[: len(whole) // 2], field_label=LABEL)
    assert not store.root.exists() or stored_files(store.root) == []


def test_a_large_jpeg_is_decoded_at_half_scale_by_the_codec(store: PhotoStore) -> None:
    data = _save(_striped((8000, 4000)), "JPEG", quality=80)

    check = store.inspect(data, field_label=LABEL)
    photo = store.process(data, filename="a.jpg", field_label=LABEL)

    assert check.scale == 2
    assert (photo.width, photo.height) == (4000, 2000)
    image = stored_image(store, photo.digest)
    assert image.getpixel((100, 1000))[0] > 200 and image.getpixel((3900, 1000))[2] > 200  # type: ignore[index]


def test_a_large_png_is_fitted_band_by_band_like_one_resize(store: PhotoStore) -> None:
    import numpy as np

    from helpdesk import photos

    noise = np.random.default_rng(7).integers(0, 255, (3000, 9000, 3), dtype=np.uint8)
    image = Image.fromarray(noise, "RGB")
    fitted = photos._fit_in_bands(image.copy(), transparency=False)
    # Pillow's own two passes: horizontal, then vertical.
    wide = image.resize((4096, 3000), Image.Resampling.LANCZOS)
    expected = wide.resize((4096, 1365), Image.Resampling.LANCZOS)
    assert fitted.size == (4096, 1365)
    assert np.array_equal(np.asarray(fitted), np.asarray(expected))


def test_a_transparent_thumbnail_is_reduced_band_by_band_exactly() -> None:
    import numpy as np

    from helpdesk import photos

    noise = np.random.default_rng(3).integers(0, 255, (3001, 2003, 4), dtype=np.uint8)
    image = Image.fromarray(noise, "RGBA")
    assert np.array_equal(np.asarray(photos._reduce(image, 7)), np.asarray(image.reduce(7)))


# -- the memory budget -----------------------------------------------------------------------


async def test_photos_wait_for_their_share_of_the_memory_budget(tmp_path: Path) -> None:
    data = [
        _save(Image.new("RGB", (1200, 900), color), "JPEG") for color in "red green blue".split()
    ]
    one = PhotoStore(tmp_path).inspect(data[0], field_label=LABEL).memory

    async def peak_concurrency(budget: int) -> int:
        store = PhotoStore(tmp_path / str(budget), memory_budget=budget)
        running, peak = 0, 0
        original = store.process

        def process(*args: object, **kwargs: object) -> StoredPhoto:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            time.sleep(0.1)
            try:
                return original(*args, **kwargs)  # type: ignore[arg-type]
            finally:
                running -= 1

        store.process = process  # type: ignore[method-assign]
        photos = await asyncio.gather(
            *(store.process_async(d, filename="a.jpg", field_label=LABEL) for d in data)
        )
        assert len({p.digest for p in photos}) == 3
        assert store.memory.in_use == 0
        return peak

    assert await peak_concurrency(int(one * 1.5)) == 1
    assert await peak_concurrency(one * 3) == 3


async def test_memory_budget_serves_waiters_in_order_and_survives_cancellation() -> None:
    from helpdesk.photos import MemoryBudget

    budget = MemoryBudget(100)
    order: list[str] = []
    release = asyncio.Event()

    async def hold(name: str, amount: int) -> None:
        async with budget.reserve(amount):
            order.append(name)
            await release.wait()

    first = asyncio.create_task(hold("first", 60))
    await asyncio.sleep(0)
    big = asyncio.create_task(hold("big", 80))
    await asyncio.sleep(0)
    small = asyncio.create_task(hold("small", 10))  # would fit now, but must not overtake
    cancelled = asyncio.create_task(hold("cancelled", 10))
    await asyncio.sleep(0.01)
    assert order == ["first"] and budget.in_use == 60
    cancelled.cancel()
    release.set()
    await asyncio.gather(first, big, small, return_exceptions=True)
    assert order == ["first", "big", "small"]
    assert budget.in_use == 0
    with pytest.raises(ValueError):
        async with budget.reserve(101):
            pass


# -- the sweep (issue 7, finding 6) ------------------------------------------------------------

DAY = 24 * 3600


def _age(store: PhotoStore, photo: StoredPhoto, seconds: float) -> None:
    when = time.time() - seconds
    for digest in (photo.digest, photo.thumb_digest):
        os.utime(store.path(digest), (when, when))


def test_sweep_deletes_old_unreferenced_files_only(store: PhotoStore) -> None:
    # Larger than the thumbnails: each photo is two files.
    kept = store.process(phone_jpeg((640, 480)), filename="a", field_label=LABEL)
    orphan = store.process(png_with_alpha((400, 300)), filename="b", field_label=LABEL)
    recent = store.process(heic((400, 300)), filename="c", field_label=LABEL)
    _age(store, kept, 2 * DAY)
    _age(store, orphan, 2 * DAY)
    asked: list[set[str]] = []

    def referenced(digests: set[str]) -> set[str]:
        asked.append(digests)
        return digests & {kept.digest, kept.thumb_digest}

    dry = store.sweep(referenced, grace_seconds=DAY, dry_run=True)
    assert sorted(dry.deleted) == sorted(
        [store.path(orphan.digest), store.path(orphan.thumb_digest)]
    )
    assert len(stored_files(store.root)) == 6  # a dry run deletes nothing

    report = store.sweep(referenced, grace_seconds=DAY)

    assert (len(report.deleted), report.referenced, report.recent) == (2, 2, 2)
    assert report.deleted_bytes > 0
    assert sorted(stored_files(store.root)) == sorted(
        store.path(d) for d in (kept.digest, kept.thumb_digest, recent.digest, recent.thumb_digest)
    )
    # Only files past the grace period are asked about.
    assert recent.digest not in set().union(*asked)


def test_storing_an_old_photo_again_restarts_its_grace_period(store: PhotoStore) -> None:
    data = phone_jpeg((300, 200))
    photo = store.process(data, filename="a", field_label=LABEL)
    _age(store, photo, 2 * DAY)

    again = store.process(data, filename="again.jpg", field_label=LABEL)

    assert again.digest == photo.digest
    report = store.sweep(lambda digests: set(), grace_seconds=DAY)
    assert report.deleted == [] and store.path(photo.digest).exists()


def test_sweep_keeps_a_photo_stored_again_while_it_runs(store: PhotoStore) -> None:
    # The race: the sweep has listed an old orphan, then a customer uploads the same photo
    # (their ticket not committed yet), then the sweep would delete it.
    data = phone_jpeg((640, 480))
    photo = store.process(data, filename="a", field_label=LABEL)
    _age(store, photo, 2 * DAY)

    def referenced(digests: set[str]) -> set[str]:
        store.process(data, filename="again.jpg", field_label=LABEL)  # concurrent upload
        return set()

    report = store.sweep(referenced, grace_seconds=DAY)

    assert report.deleted == []
    assert stored_image(store, photo.digest).size == (480, 640)  # upright
    assert stored_image(store, photo.thumb_digest).size == (240, 320)


def test_sweep_finishes_what_a_crashed_sweep_left_and_old_temporaries(store: PhotoStore) -> None:
    photo = store.process(phone_jpeg((300, 200)), filename="a", field_label=LABEL)
    path = store.path(photo.digest)
    aside = path.with_name(".sweep-" + path.name)
    os.replace(path, aside)  # a sweep died between its rename and its second look
    incoming = store.root / ".incoming"
    stale, fresh = incoming / "upload-1.tmp", incoming / "upload-2.tmp"
    stale.write_bytes(b"half an upload")
    fresh.write_bytes(b"an upload in progress")
    os.utime(stale, (time.time() - 2 * DAY, time.time() - 2 * DAY))

    report = store.sweep(lambda digests: digests, grace_seconds=DAY)

    assert path.exists() and not aside.exists()
    assert report.temporaries == 1 and not stale.exists() and fresh.exists()


def test_retain_refreshes_a_kept_photo_and_tells_when_it_was_swept(store: PhotoStore) -> None:
    photo = store.process(phone_jpeg((640, 480)), filename="a", field_label=LABEL)
    _age(store, photo, 2 * DAY)

    assert store.retain(photo) is True
    assert store.sweep(lambda digests: set(), grace_seconds=DAY).deleted == []

    _age(store, photo, 2 * DAY)
    assert len(store.sweep(lambda digests: set(), grace_seconds=DAY).deleted) == 2
    assert store.retain(photo) is False


# -- turning JPEGs upright in bands -------------------------------------------------------------


def _noisy(mode: str, size: tuple[int, int]) -> Image.Image:
    """Content that differs everywhere (a band joined at the wrong place would show)."""
    width, height = size
    image = Image.effect_noise(size, 60).convert("L")
    image.paste(Image.linear_gradient("L").resize((width // 2, height)), (0, 0))
    if mode == "L":
        return image
    return Image.merge("RGB", (image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), image))


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("turn", list(photo_module._ORIENTATIONS.values()))
def test_a_jpeg_turned_in_bands_is_the_one_libjpeg_writes_whole(
    monkeypatch: pytest.MonkeyPatch, mode: str, turn: Image.Transpose
) -> None:
    # Sides that are not whole MCUs, and bands of 32 rows: a short band at the end.
    image = _noisy(mode, (203, 150))
    out_width, _out_height = photo_module._turned_size(image.size, turn)
    monkeypatch.setattr(photo_module, "_TURN_BAND_BYTES", 32 * 4 * out_width)
    written = io.BytesIO()

    photo_module._encode(image, "image/jpeg", written, turn)

    turned = image.transpose(turn)
    mcu_height = 8 if mode == "L" else 16  # one block, or 4:2:0's 16 rows
    whole = _save(
        turned, "JPEG", quality=photo_module.JPEG_QUALITY, restart_marker_rows=32 // mcu_height
    )
    assert written.getvalue() == whole
    markers = jpeg_segments(whole)
    assert 0xDD in markers and b"\xff\xd0" in whole  # restart markers were really used
    decoded = Image.open(io.BytesIO(written.getvalue()))
    assert decoded.size == turned.size and decoded.mode == mode


def test_a_jpeg_that_cannot_be_joined_is_turned_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    image = _noisy("RGB", (203, 150))
    monkeypatch.setattr(photo_module, "_TURN_BAND_BYTES", 32 * 4 * 150)

    def refuse(data: bytes) -> None:
        raise photo_module._Splice("test")

    monkeypatch.setattr(photo_module, "_jpeg_layout", refuse)
    written = io.BytesIO()

    photo_module._encode(image, "image/jpeg", written, Image.Transpose.ROTATE_270)

    whole = _save(image.transpose(Image.Transpose.ROTATE_270), "JPEG", quality=85)
    assert written.getvalue() == whole


def test_a_turned_phone_photo_has_the_pixels_of_the_turned_image(store: PhotoStore) -> None:
    """Through ``process``: a portrait photo large enough for many bands decodes to what
    turning the decoded upload gives (up to JPEG's loss)."""
    sensor = _noisy("RGB", (1600, 1200)).filter(ImageFilter.GaussianBlur(3))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 8
    data = _save(sensor, "JPEG", quality=95, exif=exif)
    expected = Image.open(io.BytesIO(data)).transpose(Image.Transpose.ROTATE_90)

    photo = store.process(data, filename="a.jpg", field_label=LABEL)

    stored = store.open(photo.digest)
    assert 0xDD in jpeg_segments(stored)  # it went through the bands
    image = stored_image(store, photo.digest)
    assert image.size == expected.size == (1200, 1600)
    difference = ImageChops.difference(image, expected.convert("RGB"))
    assert max(high for _low, high in difference.getextrema()) < 40  # type: ignore[misc]
    mean = sum(ImageStat.Stat(difference).mean) / 3
    assert mean < 2
