"""A live Label Studio server through `label-studio-sdk` 2.x: projects, image uploads, task import, snapshot export.

The URL and API key come from arguments or from `LABEL_STUDIO_URL` / `LABEL_STUDIO_API_KEY`. The key from the
environment is sent only to the server `LABEL_STUDIO_URL` names: a URL typed by someone else (an admin in the app)
gets a key only when it is typed with it. The key is never printed, logged or put in an error message:
`Credentials` hides it from `repr`, and errors quote only the URL and the HTTP status, never what the server
answered, which could hold anything.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from app.errors import AppError
from app.export.jsonstream import atomic_output

URL_ENV = "LABEL_STUDIO_URL"
API_KEY_ENV = "LABEL_STUDIO_API_KEY"
# Label Studio serves uploaded files under its MEDIA_URL.
MEDIA_URL = "/data/"
IMPORT_BATCH = 500  # tasks per import request: well below Label Studio's 250,000-task / 200 MB request limit
UPLOAD_BATCH = 50  # images per multipart upload request
EXPORT_TIMEOUT_S = 600.0


class LabelStudioError(AppError, RuntimeError):
    """The Label Studio server refused or could not be reached; the message says what to check (never the key)."""


@dataclass(frozen=True)
class Credentials:
    url: str
    api_key: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(url={self.url!r}, api_key=<hidden>)"


def _server_key(url: str) -> tuple[str, str, int | None, str]:
    """What makes two URLs the same server: scheme, host name (any case), port (the default one filled in), path."""
    parts = urllib.parse.urlsplit(url.strip())
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:  # a port that is not a number
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port, parts.path.rstrip("/")


def resolve_credentials(
    url: str | None = None, api_key: str | None = None, env: Mapping[str, str] | None = None
) -> Credentials:
    """Arguments win over the environment; a missing value is an error that names the variable to set.

    The environment's key goes only to the environment's server: with another URL the key must be given too.
    """
    env = os.environ if env is None else env
    env_url = (env.get(URL_ENV) or "").strip()
    url = (url or env_url).strip()
    api_key = (api_key or "").strip()
    if not url:
        raise LabelStudioError(
            f"No Label Studio URL: pass --url or set {URL_ENV}, e.g. {URL_ENV}=http://localhost:8080"
        )
    if not url.startswith(("http://", "https://")):
        raise LabelStudioError(f"The Label Studio URL must start with http:// or https://, got {url!r}.")
    env_key = (env.get(API_KEY_ENV) or "").strip()
    if not api_key and env_key:
        if not env_url or _server_key(url) != _server_key(env_url):
            raise LabelStudioError(
                f"No API key for {url}: {API_KEY_ENV} is sent only to the server in {URL_ENV}"
                f"{f' ({env_url})' if env_url else ', which is not set'}. Give this server's key with the URL."
            )
        api_key = env_key
    if not api_key:
        raise LabelStudioError(
            f"No Label Studio API key: pass --api-key or set {API_KEY_ENV} (Account & Settings > Access Token)."
        )
    return Credentials(url.rstrip("/"), api_key)


def _status(code: int) -> str:
    """`HTTP 502 (Bad Gateway)`: the one line of a refusal that is safe to show."""
    try:
        return f"HTTP {code} ({HTTPStatus(code).phrase})"
    except ValueError:
        return f"HTTP {code}"


def _describe(error: Exception, credentials: Credentials) -> str:
    if isinstance(error, ApiError):
        if error.status_code in (401, 403):
            return f"Label Studio at {credentials.url} refused the API key (HTTP {error.status_code}). Check it."
        if error.status_code is None:
            return f"Label Studio at {credentials.url} gave an answer that could not be read."
        return f"Label Studio at {credentials.url} answered {_status(error.status_code)}; see the server's log."
    if isinstance(error, httpx.HTTPError):
        return f"Cannot reach Label Studio at {credentials.url}: {type(error).__name__}. Is the server running?"
    return f"Label Studio at {credentials.url} failed: {type(error).__name__}."


class LabelStudioServer:
    """One connection to a Label Studio server."""

    def __init__(self, credentials: Credentials, *, timeout_s: float = 120.0) -> None:
        self.credentials = credentials
        self.client = LabelStudio(base_url=credentials.url, api_key=credentials.api_key, timeout=timeout_s)
        self._http = httpx.Client(base_url=credentials.url, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LabelStudioServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, operation, *args, **kwargs):
        try:
            return operation(*args, **kwargs)
        except (ApiError, httpx.HTTPError) as error:
            raise LabelStudioError(_describe(error, self.credentials)) from None

    def _headers(self) -> dict[str, str]:
        # The SDK knows whether the key is a legacy token or a personal access token (JWT, exchanged for an access
        # token); reuse its headers for the few requests it has no method for (multipart upload, file download).
        return self.client._client_wrapper.get_headers()

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self._http.request(method, path, headers=self._headers(), **kwargs)
        except httpx.HTTPError as error:
            raise LabelStudioError(_describe(error, self.credentials)) from None
        if response.status_code in (401, 403):
            raise LabelStudioError(f"Label Studio at {self.credentials.url} refused the API key. Check it.")
        if response.status_code >= 400:
            raise LabelStudioError(
                f"Label Studio at {self.credentials.url} answered {_status(response.status_code)} to {method} "
                f"{path}; see the server's log."
            )
        return response

    # Projects

    def check(self) -> str:
        """The signed-in user's email; fails early with a clear message on a wrong URL or key."""
        user = self._call(self.client.users.whoami)
        return str(getattr(user, "email", "") or "")

    def find_project(self, title: str) -> int | None:
        for project in self._call(lambda: list(self.client.projects.list(title=title, page_size=100))):
            if project.title == title:
                return project.id
        return None

    def ensure_project(self, title: str, label_config: str, description: str = "") -> tuple[int, bool]:
        """The id of the project called `title` (its labeling config updated to ours), or of a new one; and
        whether it was created."""
        existing = self.find_project(title)
        if existing is not None:
            current = self.project_label_config(existing)
            if current.strip() != label_config.strip():
                self._call(self.client.projects.update, existing, label_config=label_config)
            return existing, False
        project = self._call(
            self.client.projects.create, title=title, label_config=label_config, description=description
        )
        return project.id, True

    def project_label_config(self, project_id: int) -> str:
        return self._call(self.client.projects.get, project_id).label_config or ""

    def project_title(self, project_id: int) -> str:
        return self._call(self.client.projects.get, project_id).title or ""

    def task_keys(self, project_id: int) -> set[str]:
        """Content hashes (`meta.rise.sha256`) of the project's tasks: what an earlier push already brought."""
        keys: set[str] = set()
        pages = self._call(lambda: self.client.tasks.list(project=project_id, fields="task_only", page_size=1000))
        for task in self._call(lambda: list(pages)):
            meta = getattr(task, "meta", None) or {}
            sha = (meta.get("rise") or {}).get("sha256") if isinstance(meta, dict) else None
            if isinstance(sha, str):
                keys.add(sha)
        return keys

    # Images and tasks

    def upload_images(self, project_id: int, files: Sequence[tuple[str, bytes, str]]) -> dict[str, str]:
        """Upload `(file name, bytes, mime type)` files to the project without creating tasks; returns file name
        -> the URL a task's data should use. Names must be unique (we use the content hash)."""
        urls: dict[str, str] = {}
        for start in range(0, len(files), UPLOAD_BATCH):
            batch = files[start : start + UPLOAD_BATCH]
            response = self._request(
                "POST",
                f"/api/projects/{project_id}/import",
                params={"commit_to_project": "false"},
                # One form field per file: Label Studio reads one file per field name.
                files=[(f"file{index}", (name, data, mime)) for index, (name, data, mime) in enumerate(batch)],
            )
            ids = response.json().get("file_upload_ids") or []
            listed = self._request(
                "GET", f"/api/projects/{project_id}/file-uploads", params={"ids": json.dumps(ids)}
            ).json()
            # Stored names are "<8 random hex>-<our name>"; match on the suffix.
            for name, _, _ in batch:
                match = next((f["file"] for f in listed if str(f.get("file", "")).endswith("-" + name)), None)
                if match is None:
                    raise LabelStudioError(f"Label Studio did not keep the upload {name!r}; see its log.")
                urls[name] = match if match.startswith(("/", "http")) else MEDIA_URL + match
        return urls

    def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]]) -> tuple[int, int, int]:
        """Import tasks with their predictions and annotations; returns (tasks, annotations, predictions)."""
        counts = [0, 0, 0]
        for start in range(0, len(tasks), IMPORT_BATCH):
            batch = list(tasks[start : start + IMPORT_BATCH])
            response = self._call(self.client.projects.import_tasks, project_id, request=batch)
            counts[0] += response.task_count or 0
            counts[1] += response.annotation_count or 0
            counts[2] += response.prediction_count or 0
        return counts[0], counts[1], counts[2]

    # Export

    def snapshot_export(self, project_id: int, out_path: Path, *, timeout_s: float = EXPORT_TIMEOUT_S) -> Path:
        """Export every task of the project through a snapshot (predictions in full, annotation authors with their
        email) and stream the JSON file to `out_path`. The quick export would give predictions as ids only."""
        snapshot = self._call(
            self.client.projects.exports.create,
            project_id,
            title="RISE Annotate pull",
            serialization_options={
                "predictions": {"only_id": False},
                "annotations__completed_by": {"only_id": False},
            },
        )
        deadline = time.monotonic() + timeout_s
        while snapshot.status not in ("completed", "failed"):
            if time.monotonic() > deadline:
                raise LabelStudioError(f"The Label Studio export {snapshot.id} did not finish in {timeout_s:.0f} s.")
            time.sleep(0.5)
            snapshot = self._call(self.client.projects.exports.get, project_id, export_pk=snapshot.id)
        if snapshot.status == "failed":
            raise LabelStudioError(f"Label Studio could not export project {project_id}; see its log.")
        with atomic_output(out_path, "wb") as handle:

            def stream() -> None:
                for chunk in self.client.projects.exports.download(
                    project_id, export_pk=snapshot.id, export_type="JSON"
                ):
                    handle.write(chunk)

            self._call(stream)
        return out_path

    def download(self, url: str) -> bytes:
        """A file the server holds (an upload, `/data/...`), fetched with the API key."""
        if url.startswith(self.credentials.url):
            url = url[len(self.credentials.url) :]
        return self._request("GET", url if url.startswith("/") else "/" + url).content


def batched(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
