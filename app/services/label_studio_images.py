"""Finding the image of a Label Studio task, only where the person importing said images may be.

A task names its image in one of several forms (see `ImageResolver`). A file on this machine is read only when it
lies inside a folder given for the import: `image_root` for plain paths and `/data/local-files/?d=...`, and
`label_studio_media` for `/data/upload/...`. Every path is resolved first (`..`, symbolic links), so neither can
lead out of those folders, and an absolute path counts only when it, too, lies inside. Every refusal gives the same
message as a file that is not there, so an import cannot be used to learn which files exist elsewhere.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.errors import AppError

LOCAL_FILES_PREFIX = "/data/local-files/"
UPLOAD_PREFIX = "/data/upload/"


class ImageMissing(AppError, LookupError):
    """A task's image cannot be found; the message is the reason for the report."""


def read_inside(root: Path, reference: str) -> bytes | None:
    """The bytes of the file `reference` names below `root` (or absolutely, inside it), or None when there is no
    such readable file inside `root`, for whatever reason."""
    try:
        base = root.resolve()
        candidate = (base / reference).resolve()
        if not candidate.is_relative_to(base) or not candidate.is_file():
            return None
        return candidate.read_bytes()
    except (OSError, ValueError):  # unreadable, or a name the system refuses (an embedded NUL)
        return None


class ImageResolver:
    """Turns a task's image reference into bytes.

    Tried in order: our own media folder by the content hash in `meta.rise.sha256`; a data URI; a Label Studio
    local-files reference (`/data/local-files/?d=...`) or a plain path, inside `image_root`; a file the server holds
    (`/data/upload/...` or a URL on the server), downloaded with the API key; an upload found inside Label Studio's
    own media folder (`label_studio_media`) when there is no server.
    """

    def __init__(
        self,
        *,
        media_dir: Path,
        image_root: Path | None = None,
        label_studio_media: Path | None = None,
        download: Callable[[str], bytes] | None = None,
        server_url: str | None = None,
    ) -> None:
        self.media_dir = media_dir
        self.image_root = image_root
        self.label_studio_media = label_studio_media
        self.download = download
        self.server_url = (server_url or "").rstrip("/")

    def _from_media(self, sha256: Any) -> bytes | None:
        if not isinstance(sha256, str) or len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            return None
        for candidate in (self.media_dir / sha256[:2]).glob(f"{sha256}.*"):
            return candidate.read_bytes()
        return None

    def _local(self, relative: str) -> bytes:
        """A file below the image root, `relative` already URL-decoded."""
        if self.image_root is None:
            raise ImageMissing(f"image file {relative[:120]!r} is not read: no image root was given to find it in")
        data = read_inside(self.image_root, relative)
        if data is None:
            raise ImageMissing(f"image file {relative[:120]!r} not found under the image root {self.image_root}")
        return data

    def fetch(self, reference: Any, sha256: Any = None) -> bytes:
        stored = self._from_media(sha256)
        if stored is not None:
            return stored
        if not isinstance(reference, str) or not reference.strip():
            raise ImageMissing("the task has no image reference in data.image")
        reference = reference.strip()
        if reference.startswith("data:"):
            header, _, payload = reference.partition(",")
            if ";base64" not in header:
                raise ImageMissing("an inline image that is not base64")
            try:
                return base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                raise ImageMissing("an inline image with invalid base64") from None
        if reference.startswith(LOCAL_FILES_PREFIX):
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(reference).query)
            if not query.get("d"):
                raise ImageMissing(f"a local-files reference without ?d=: {reference[:120]!r}")
            return self._local(query["d"][0])  # parse_qs has decoded it
        is_url = reference.startswith(("http://", "https://"))
        on_server = reference.startswith("/data/") or (self.server_url and reference.startswith(self.server_url))
        if on_server and self.download is not None:
            try:
                return self.download(reference)
            except Exception as error:  # the message never holds the key; see label_studio_push
                raise ImageMissing(f"could not download {reference[:120]!r}: {error}") from None
        if reference.startswith(UPLOAD_PREFIX) and self.label_studio_media is not None:
            data = read_inside(self.label_studio_media, urllib.parse.unquote(reference[len("/data/") :]))
            if data is not None:
                return data
        if is_url or reference.startswith("/data/"):
            raise ImageMissing(
                f"image {reference[:120]!r} is on a server: pull the tasks from it, or give the image root it is in"
            )
        return self._local(urllib.parse.unquote(reference))
