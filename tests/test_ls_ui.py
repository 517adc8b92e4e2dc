"""The admin export controls: downloads in every format, push to Label Studio, refusals, escaped messages."""

from __future__ import annotations

import inspect
import json
import threading
import uuid
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import gradio as gr
import pytest

from app.services.auth import UserInfo
from app.ui.export_tab import FORMATS, on_download, on_push
from tests.utils.exchange import seed_reviewed_project

ADMIN = UserInfo(id=1, username="root", role="admin")
REVIEWER = UserInfo(id=2, username="ada", role="reviewer")


@pytest.fixture
def project_id(runtime, tmp_path) -> int:
    seed_reviewed_project(runtime, "shapes <b>", "detection", ["circle", "square"], tmp_path / "images")
    from app.services.projects import list_projects

    return next(p.id for p in list_projects(runtime) if p.name == "shapes <b>")


@pytest.mark.parametrize("label", list(FORMATS))
def test_every_format_downloads_a_file(runtime, project_id, label):
    path, status = on_download(runtime, ADMIN, project_id, label)
    assert path is not None and Path(path).is_file(), status
    assert "Ready:" in status and "<b>" not in status
    kind = FORMATS[label]
    if kind == "label-studio":
        assert len(json.loads(Path(path).read_text())) == 4
    elif kind == "label-studio-config":
        assert Path(path).read_text().startswith("<View>")
    elif kind == "coco":
        assert len(json.loads(Path(path).read_text())["annotations"]) == 3
    else:
        assert any(name.endswith("dataset_dict.json") for name in zipfile.ZipFile(path).namelist())


def test_reviewers_and_missing_projects_are_refused(runtime, project_id):
    with pytest.raises(gr.Error, match="Only admins"):
        on_download(runtime, REVIEWER, project_id, next(iter(FORMATS)))
    with pytest.raises(gr.Error, match="Only admins"):
        on_push(runtime, REVIEWER, project_id, "", "", "", "upload")
    with pytest.raises(gr.Error, match="Pick a project"):
        on_download(runtime, ADMIN, None, next(iter(FORMATS)))


def test_a_push_that_fails_says_why_escaped_and_without_the_key(runtime, project_id, monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    status = on_push(runtime, ADMIN, project_id, "http://127.0.0.1:9/<x>", "secret-key-123", "", "upload")
    assert "rise-error" in status and "Cannot reach Label Studio" in status
    assert "&lt;x&gt;" in status and "secret-key-123" not in status
    status = on_push(runtime, ADMIN, project_id, "http://127.0.0.1:9", "", "", "upload")
    assert "LABEL_STUDIO_API_KEY" in status


class RecordingServer(ThreadingHTTPServer):
    """A real HTTP server that records the headers of every request and answers each with HTTP 500 and a body
    that must never reach the admin's screen."""

    body = b"Traceback (most recent call last):\n  File secret_settings.py\n<script>alert(1)</script>"

    def __init__(self) -> None:
        self.headers_seen: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                server.headers_seen.append(dict(self.headers))
                self.send_response(500)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            do_GET = do_POST = do_PATCH = _answer

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def recording_server() -> Iterator[RecordingServer]:
    server = RecordingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_environment_key_goes_only_to_the_configured_server(runtime, project_id, recording_server, monkeypatch):
    env_key = "env-key-for-the-configured-server-only"
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", env_key)
    status = on_push(runtime, ADMIN, project_id, recording_server.url, "", "", "upload")
    assert "No API key for" in status and "LABEL_STUDIO_URL" in status and env_key not in status
    assert recording_server.headers_seen == []  # refused before anything was sent
    status = on_push(runtime, ADMIN, project_id, recording_server.url, "typed-key-for-this-server", "", "upload")
    sent = " ".join(value for headers in recording_server.headers_seen for value in headers.values())
    assert recording_server.headers_seen and "typed-key-for-this-server" in sent and env_key not in sent


def test_a_refusal_shows_one_line_of_status_and_none_of_the_body(runtime, project_id, recording_server):
    status = on_push(runtime, ADMIN, project_id, recording_server.url, "some-key", "", "upload")
    assert "HTTP 500 (Internal Server Error)" in status
    assert "Traceback" not in status and "secret_settings" not in status and "alert" not in status


@pytest.mark.label_studio
def test_push_from_the_admin_page_creates_the_project(runtime, project_id, label_studio_server):
    title = f"from the UI {uuid.uuid4().hex[:8]}"
    status = on_push(runtime, ADMIN, project_id, label_studio_server.url, label_studio_server.api_key, title, "inline")
    assert "Created Label Studio project" in status and "4 tasks" in status and "2 annotations" in status
    assert label_studio_server.api_key not in status


def test_the_admin_page_carries_the_export_controls(runtime):
    from app.ui.web_app import build_web_app

    demo = build_web_app(runtime)
    events = {fn.api_name: fn for fn in demo.fns.values() if fn.api_name in ("export_download", "export_push")}
    assert set(events) == {"export_download", "export_push"}
    # Each event's handler is wrapped to get the current user (app.ui.session); inside is the partial of ours.
    handlers = {name: inspect.unwrap(event.fn).func for name, event in events.items()}
    assert handlers == {"export_download": on_download, "export_push": on_push}
    labels = {getattr(block, "label", None) for block in demo.blocks.values()}
    assert {"Format", "Export file", "Label Studio URL", "API key"} <= labels
