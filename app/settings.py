"""Application settings, read once from the environment and validated at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from app.errors import AppError

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Addresses that mean "every interface": a server bound to one is reached by names these do not tell.
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}
_HOST_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789.-:[]")


class SettingsError(AppError, ValueError):
    """A setting in the environment is missing, malformed or unsafe."""


def _int_env(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw.replace("_", ""))
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer. Example: {name}={default}") from None


def _float_env(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number. Example: {name}={default:g}") from None


def _host_names(env: dict[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of host names (no scheme, port or path), lower-cased."""
    names = []
    for raw in (env.get(name) or "").split(","):
        host = raw.strip().lower()
        if not host:
            continue
        if not set(host) <= _HOST_NAME_CHARS or host.count(":") == 1:
            raise SettingsError(
                f"{name} holds {raw.strip()!r}, which is not a host name: list the names clients type, without "
                f"scheme or port, e.g. {name}=annotate.example.org,10.0.0.5"
            )
        names.append(host.strip("[]"))
    return tuple(names)


@dataclass(frozen=True)
class Settings:
    """Everything the app reads from the environment.

    > Storage

    data_dir: `RISE_DATA_DIR`, default `./data`. Holds the SQLite database, the media folder and model outputs.
    database_url: `RISE_DATABASE_URL`, default `sqlite:///<data_dir>/rise.db`; use
        `postgresql+psycopg://user:password@host/db` for a team server.
    media_dir: `RISE_MEDIA_DIR`, default `<data_dir>/media`. Imported images, stored by content hash.

    db_lock_timeout_s: `RISE_DB_LOCK_TIMEOUT_S`, default 10. How long a write waits for another one's lock (SQLite's
        busy timeout, PostgreSQL's lock_timeout) before it gives up and the reviewer is asked to try again.

    > Import limits

    max_image_pixels: `RISE_MAX_IMAGE_PIXELS`, default 50,000,000. Larger images are refused at import
        (decompression-bomb guard).

    > Server

    host / port: `RISE_HOST` (default `127.0.0.1`) and `RISE_PORT` (default 7860).
    allowed_hosts: `RISE_ALLOWED_HOSTS`, default none. The host names (comma-separated, no port) clients reach the
        server by, besides the loopback names and the `RISE_HOST` address, which are always accepted. A request for
        any other name is refused, which stops DNS rebinding; a team server names its own, e.g.
        `RISE_ALLOWED_HOSTS=annotate.example.org`.
    max_upload_mb: `RISE_MAX_UPLOAD_MB`, default 100. The largest file an admin may upload through the app.
    """

    data_dir: Path
    database_url: str
    media_dir: Path
    max_image_pixels: int = 50_000_000
    db_lock_timeout_s: float = 10.0
    host: str = "127.0.0.1"
    port: int = 7860
    allowed_hosts: tuple[str, ...] = ()
    max_upload_mb: int = 100

    def __post_init__(self) -> None:
        if self.max_upload_mb <= 0:
            raise SettingsError("RISE_MAX_UPLOAD_MB must be positive, e.g. RISE_MAX_UPLOAD_MB=100")
        if not self.db_lock_timeout_s > 0:
            raise SettingsError("RISE_DB_LOCK_TIMEOUT_S must be positive, e.g. RISE_DB_LOCK_TIMEOUT_S=10")
        if self.max_image_pixels <= 0:
            raise SettingsError("RISE_MAX_IMAGE_PIXELS must be positive, e.g. RISE_MAX_IMAGE_PIXELS=50000000")
        if not (0 < self.port < 65536):
            raise SettingsError(f"RISE_PORT={self.port} is out of range; pick a port in 1..65535, e.g. 7860")

    @property
    def is_loopback(self) -> bool:
        """True when the server only listens on this machine, the one case where the demo may skip login."""
        return self.host in LOOPBACK_HOSTS

    @property
    def accepted_host_names(self) -> frozenset[str]:
        """The host names a request may name: loopback, the address the server is bound to, `allowed_hosts`."""
        bound = set() if self.host in WILDCARD_HOSTS else {self.host.lower().strip("[]")}
        return frozenset(LOOPBACK_HOSTS | bound | set(self.allowed_hosts))


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Build `Settings` from `env` (default: the process environment)."""
    env = dict(os.environ) if env is None else env
    data_dir = Path(env.get("RISE_DATA_DIR") or "data").expanduser().resolve()
    database_url = env.get("RISE_DATABASE_URL") or f"sqlite:///{data_dir / 'rise.db'}"
    media_dir = Path(env.get("RISE_MEDIA_DIR") or data_dir / "media").expanduser().resolve()
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        media_dir=media_dir,
        max_image_pixels=_int_env(env, "RISE_MAX_IMAGE_PIXELS", 50_000_000),
        db_lock_timeout_s=_float_env(env, "RISE_DB_LOCK_TIMEOUT_S", 10.0),
        host=env.get("RISE_HOST") or "127.0.0.1",
        port=_int_env(env, "RISE_PORT", 7860),
        allowed_hosts=_host_names(env, "RISE_ALLOWED_HOSTS"),
        max_upload_mb=_int_env(env, "RISE_MAX_UPLOAD_MB", 100),
    )
