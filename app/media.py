"""Content-addressed image storage and the checks every imported file passes.

A file is accepted only if Pillow recognises it as one of `FORMATS`, its pixel count (read from the header, before
any pixel is decoded) is within the configured limit, and it decodes completely. The stored copy lives at
`<media_dir>/<sha[:2]>/<sha>.<ext>`, where `sha` is the SHA-256 of the original bytes, so the same file is stored
once however often and into however many projects it is imported. The stored image is upright: when the EXIF
orientation tag asks for a rotation or flip the pixels are transposed and re-encoded; otherwise the bytes are copied
unchanged.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from app.errors import AppError

# Pillow format name -> file extension of the stored copy. Only formats decoded in-process by Pillow itself: EPS
# would start Ghostscript, and exotic formats widen the attack surface for no annotation use.
FORMATS: dict[str, str] = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff"}
_FORMAT_NAMES = "PNG, JPEG, WebP, GIF, BMP or TIFF"
_ORIENTATION_TAG = 0x0112
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")
# Encoder settings for the rare re-encode after an EXIF transpose: visually lossless for JPEG/WebP.
_SAVE_OPTIONS: dict[str, dict[str, object]] = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}}


class ImageRejected(AppError, ValueError):
    """The file is not an image this app can store; `reason` is one short sentence for the import summary."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PreparedImage:
    """A validated image, ready to be written: the bytes to store and the upright size."""

    data: bytes
    extension: str
    width: int
    height: int
    transposed: bool


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def media_relpath(sha256: str, extension: str) -> str:
    """Where a file lives under the media folder, as a POSIX path (stored in `Item.media_path`)."""
    return f"{sha256[:2]}/{sha256}.{extension}"


def _allow_limit(max_pixels: int) -> None:
    # Pillow refuses images above 2 x Image.MAX_IMAGE_PIXELS inside Image.open. Raise (never lower) that process-wide
    # ceiling so a configured limit above Pillow's default is honoured; our own header check below enforces ours.
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _too_many_pixels(pixels: int, max_pixels: int, size: tuple[int, int] | None = None) -> ImageRejected:
    dims = f"{size[0]}×{size[1]} = " if size else ""
    return ImageRejected(
        f"too large: {dims}{pixels:,} pixels exceeds the limit of {max_pixels:,} (RISE_MAX_IMAGE_PIXELS)"
    )


def _open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """Identify the image and check its size from the header alone: Image.open does not decode pixels."""
    if not data:
        raise ImageRejected("empty file (0 bytes)")
    _allow_limit(max_pixels)
    try:
        with warnings.catch_warnings():
            # We refuse oversized images ourselves with a clearer reason; Pillow's warning would only add noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(FORMATS))
    except Image.DecompressionBombError as error:
        match = _BOMB_PIXELS.search(str(error))
        raise _too_many_pixels(int(match.group(1)) if match else max_pixels + 1, max_pixels) from None
    except UnidentifiedImageError:
        raise ImageRejected(f"not an image, or not a supported format ({_FORMAT_NAMES})") from None
    except Exception as error:  # Pillow raises many types on hostile headers (SyntaxError, struct.error, ...).
        raise ImageRejected(f"unreadable image header: {error}") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageRejected(f"invalid image size {width}×{height}")
    if width * height > max_pixels:
        raise _too_many_pixels(width * height, max_pixels, (width, height))
    return image


def prepare_image(data: bytes, *, max_pixels: int) -> PreparedImage:
    """Validate `data` as an image and return what to store.

    Raises:
        ImageRejected: empty, not a supported image, too many pixels, or truncated/corrupt pixel data.
    """
    image = _open_checked(data, max_pixels)
    image_format = image.format or ""
    try:
        # Decoding every pixel is the only reliable way to find truncated or corrupt files before a reviewer does.
        image.load()
    except Exception as error:
        raise ImageRejected(f"truncated or corrupt image data: {error}") from None
    try:
        orientation = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # A malformed EXIF block must not cost the image; treat it as upright.
        orientation = 1
    if orientation not in range(2, 9):
        return PreparedImage(data, FORMATS[image_format], image.width, image.height, transposed=False)
    try:
        upright = ImageOps.exif_transpose(image)
        assert upright is not None  # in_place=False always returns an image
        buffer = io.BytesIO()
        icc_profile = image.info.get("icc_profile")
        options = dict(_SAVE_OPTIONS.get(image_format, {}))
        if icc_profile:
            options["icc_profile"] = icc_profile
        upright.save(buffer, format=image_format, **options)
    except Exception as error:
        raise ImageRejected(f"could not apply the EXIF orientation {orientation}: {error}") from None
    return PreparedImage(buffer.getvalue(), FORMATS[image_format], upright.width, upright.height, transposed=True)


def write_media(media_dir: Path, sha256: str, image: PreparedImage) -> str:
    """Store `image` under its content address (once) and return the path relative to `media_dir`."""
    relpath = media_relpath(sha256, image.extension)
    target = media_dir / relpath
    if target.exists():
        return relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary file and rename: a crash or a concurrent import never leaves a half-written image.
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(image.data)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return relpath
