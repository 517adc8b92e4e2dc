"""Small helpers that create projects, items and image files for tests. Plain functions: no fixtures to register."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

from PIL import Image
from sqlalchemy.orm import Session

from db.crud import projects as crud
from db.models import Item, Project, Split


def make_project(
    session: Session,
    name: str = "shapes",
    task_type: str = "classification",
    labels: Sequence[str] = ("circle", "square"),
    **kwargs,
) -> Project:
    return crud.create_project(session=session, name=name, task_type=task_type, labels=labels, **kwargs)


def make_item(
    session: Session,
    project: Project,
    *,
    seed: int = 0,
    width: int = 64,
    height: int = 64,
    split: Split = Split.train,
    query: str | None = None,
) -> Item:
    """An item row without a media file; `seed` makes its hash unique within the project."""
    sha = f"{seed:064x}"
    new = crud.NewItem(
        sha256=sha,
        media_path=f"{sha[:2]}/{sha}.png",
        original_name=f"item_{seed}.png",
        width=width,
        height=height,
        split=split,
        query=query,
    )
    return crud.create_items(session=session, project_id=project.id, items=[new])[0]


def image_for_seed(seed: int, size: tuple[int, int] = (16, 16)) -> Image.Image:
    """A small RGB image whose pixels differ for every seed below 2**24 (so every file has its own hash)."""
    image = Image.new("RGB", size, ((seed * 37) % 256, (seed >> 8) % 256, (seed >> 16) % 256))
    image.putpixel((0, 0), (seed % 256, (seed >> 8) % 256, 255 - (seed >> 16) % 256))
    return image


def write_png(path: Path, seed: int = 0, size: tuple[int, int] = (16, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image_for_seed(seed, size).save(path, format="PNG")
    return path


def write_pngs(folder: Path, count: int, size: tuple[int, int] = (16, 16), start: int = 0) -> list[Path]:
    return [write_png(folder / f"img_{seed:05d}.png", seed, size) for seed in range(start, start + count)]


def write_truncated_png(path: Path, size: tuple[int, int] = (64, 64)) -> Path:
    """A PNG cut in the middle of its pixel data (noise, so the data is long enough to cut)."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", size, bytes((i * 7919) % 251 for i in range(size[0] * size[1] * 3))).save(buffer, "PNG")
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) // 2])
    return path


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def write_blank_png(path: Path, width: int, height: int) -> Path:
    """A valid, all-black 1-bit PNG of any size, written row by row: 30,000 × 30,000 takes ~110 kB and well under a
    second, and never holds the pixels in memory (a decompression-bomb test file)."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    with path.open("wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n")
        handle.write(_png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)))
        idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
        handle.write(_png_chunk(b"IDAT", idat))
        handle.write(_png_chunk(b"IEND", b""))
    return path


def write_exif_jpeg(path: Path, size: tuple[int, int], orientation: int) -> Path:
    """A JPEG stored `size` wide x high whose EXIF says to display it with `orientation` (6 = rotate 90° clockwise).
    The left half is red and the right half blue, so a test can tell where the pixels went."""
    image = Image.new("RGB", size, (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, size[0] // 2, size[1]))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", exif=exif, quality=95)
    return path
