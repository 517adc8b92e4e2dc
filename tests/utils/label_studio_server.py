"""A real Label Studio server for the round-trip tests, started once per test session.

Label Studio pins old pytz/dateutil/pyarrow, so it lives in its own virtual environment (`.label-studio-venv`,
built by `scripts/label-studio-venv.sh`, which `make test` runs first). The server listens on 127.0.0.1 only, keeps
everything in a throwaway data folder and makes no outside calls: Sentry off (`SENTRY_DSN=`) and no version check.
A fresh data folder takes about 25 s to come up; `/health` answers once it is ready.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LABEL_STUDIO_VENV = Path(os.environ.get("RISE_LABEL_STUDIO_VENV", REPO_ROOT / ".label-studio-venv"))
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "label-studio-venv.sh"
STARTUP_TIMEOUT_S = 180.0


@dataclass
class LabelStudioServer:
    url: str
    api_key: str
    username: str
    password: str
    data_dir: Path
    process: subprocess.Popen | None

    @property
    def media_dir(self) -> Path:
        """Where the server stores uploaded files: `<data_dir>/media/upload/<project id>/...`."""
        return self.data_dir / "media"


def ensure_label_studio_venv(venv: Path = LABEL_STUDIO_VENV) -> Path:
    """The `label-studio` executable, installing the separate environment first when it is missing."""
    executable = venv / "bin" / "label-studio"
    if not executable.exists():
        subprocess.run(["bash", str(INSTALL_SCRIPT), str(venv)], check=True, cwd=REPO_ROOT)
    return executable


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Label Studio exited with {process.returncode}; log:\n{log_path.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise RuntimeError(
        f"Label Studio did not answer /health in {timeout_s:.0f} s; log:\n{log_path.read_text()[-4000:]}"
    )


def start_label_studio(data_dir: Path, *, port: int | None = None, timeout_s: float = STARTUP_TIMEOUT_S):
    """Start a Label Studio server on 127.0.0.1 with its data under `data_dir`; return it once `/health` answers."""
    executable = ensure_label_studio_venv()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}"
    username, password, token = "admin@example.com", secrets.token_hex(12), secrets.token_hex(20)
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        # Tasks that reference local files (the `/data/local-files/?d=` form) resolve under this root.
        "LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(data_dir),
    }
    log_path = data_dir / "label-studio.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [
            str(executable),
            "start",
            "--no-browser",
            "--internal-host",
            "127.0.0.1",
            "-p",
            str(port),
            "--data-dir",
            str(data_dir),
            "--username",
            username,
            "--password",
            password,
            "--user-token",
            token,
            "--enable-legacy-api-token",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=data_dir,
        start_new_session=True,
    )
    log.close()
    try:
        _wait_healthy(url, process, log_path, timeout_s)
    except BaseException:
        stop_label_studio(process)
        raise
    return LabelStudioServer(
        url=url, api_key=token, username=username, password=password, data_dir=data_dir, process=process
    )


def stop_label_studio(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def label_studio_server(tmp_path_factory) -> Iterator[LabelStudioServer]:
    """One Label Studio server for the whole test session, in a throwaway data folder.

    While working on these tests, point RISE_TEST_LABEL_STUDIO_URL and RISE_TEST_LABEL_STUDIO_KEY at a server
    started once with `start_label_studio` to skip the start-up on every run.
    """
    if os.environ.get("RISE_TEST_LABEL_STUDIO_URL") and os.environ.get("RISE_TEST_LABEL_STUDIO_KEY"):
        yield LabelStudioServer(
            url=os.environ["RISE_TEST_LABEL_STUDIO_URL"],
            api_key=os.environ["RISE_TEST_LABEL_STUDIO_KEY"],
            username="",
            password="",
            data_dir=Path(os.environ.get("RISE_TEST_LABEL_STUDIO_DATA", tmp_path_factory.mktemp("unused"))),
            process=None,
        )
        return
    server = start_label_studio(tmp_path_factory.mktemp("label-studio"))
    try:
        yield server
    finally:
        stop_label_studio(server.process)
