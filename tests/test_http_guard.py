"""The web server's guard, against the real server: host names (DNS rebinding), the Origin of changes, and
Gradio's own routes (uploads, files, the ones the app does not use) behind the app's sign-in, with a size limit."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from app.services import auth
from app.services.browser_sessions import cookie_name_for
from app.ui.http_guard import Access, host_name, origin_name, route_access
from tests.utils.factories import write_pngs
from tests.utils.ui import ADMIN, REVIEWER, create_accounts, seed_detection_project

TIMEOUT_MS = 15_000


def call_event(url: str, api_name: str, data: list, headers: dict[str, str] | None = None) -> httpx.Response:
    """Start an event through Gradio's HTTP API, as any page or script can; the answer says whether it was let in."""
    return httpx.post(f"{url}gradio_api/call/{api_name}", json={"data": data}, headers=headers or {}, timeout=30)


def event_result(url: str, api_name: str, started: httpx.Response) -> str:
    event_id = started.json()["event_id"]
    return httpx.get(f"{url}gradio_api/call/{api_name}/{event_id}", timeout=30).text


class TestHostNames:
    def test_a_rebound_host_name_gets_nothing_without_login_on_loopback(self, runtime, serve_app):
        app = serve_app(runtime)  # loopback, no login: every request acts as the local admin
        evil = {"Host": f"evil.example:{app.port}", "Origin": f"http://evil.example:{app.port}"}
        assert httpx.get(f"{app.url}config", headers=evil).status_code == 400
        refused = call_event(app.url, "users_create", ["mallory", "mallory-password", "admin"], evil)
        assert refused.status_code == 400 and "RISE_ALLOWED_HOSTS" in refused.text
        assert httpx.get(f"{app.url}config").status_code == 200  # the loopback name is answered
        assert [user.username for user in auth.list_users(runtime)] == ["local"]

    def test_another_sites_page_cannot_post_to_the_app(self, runtime, serve_app):
        app = serve_app(runtime)
        forged = call_event(app.url, "users_create", ["mallory", "mallory-password", "admin"],
                            {"Origin": "http://evil.example"})  # fmt: skip
        assert forged.status_code == 403
        own_page = call_event(app.url, "users_create", ["eve", "eve-password", "reviewer"],
                              {"Origin": app.url.rstrip("/")})  # fmt: skip
        assert own_page.status_code == 200 and "Created reviewer" in event_result(app.url, "users_create", own_page)
        assert [user.username for user in auth.list_users(runtime)] == ["eve", "local"]

    def test_the_names_of_a_deployment_are_answered(self, runtime, serve_app):
        deployed = dataclasses.replace(runtime, settings=dataclasses.replace(
            runtime.settings, allowed_hosts=("annotate.example.org",)))  # fmt: skip
        app = serve_app(deployed, require_login=True)
        named = {"Host": "Annotate.Example.org", "Origin": "https://annotate.example.org"}
        assert httpx.get(f"{app.url}config", headers=named).status_code == 200
        assert httpx.get(f"{app.url}config", headers={"Host": "other.example.org"}).status_code == 400

    def test_no_public_link_whatever_the_environment_says(self, runtime, serve_app, monkeypatch):
        monkeypatch.setenv("GRADIO_SHARE", "true")
        monkeypatch.setenv("GRADIO_NUM_WORKERS", "2")
        app = serve_app(runtime)
        assert app.web_app.share is False and app.web_app.share_url is None
        assert getattr(app.web_app, "_static_worker_pool", None) is None

    @pytest.mark.parametrize(
        ("header", "name"),
        [("Example.org:7860", "example.org"), ("[::1]:80", "::1"), ("localhost", "localhost"), ("", "")],
    )
    def test_host_headers_are_read_without_their_port(self, header, name):
        assert host_name(header) == name

    def test_origins_are_read_as_urls_only(self):
        assert origin_name("https://Annotate.example.org:443") == "annotate.example.org"
        assert origin_name("null") is None and origin_name("file:///x") is None


class TestGradioRoutes:
    @pytest.mark.parametrize(
        ("path", "access"),
        [
            ("/gradio_api/upload", Access.admin),
            ("/gradio_api/upload_progress", Access.admin),
            ("/gradio_api/file=/tmp/gradio/x.png", Access.signed_in),
            ("/gradio_api/file=/tmp/gradio_api/upload", Access.admin),  # the most closed pattern wins
            ("/gradio_api/proxy=https://example.org/x", Access.nobody),
            ("/monitoring", Access.nobody),
            ("/gradio_api/queue/join", Access.anyone),  # events check their user themselves
            ("/config", Access.anyone),
        ],
    )
    def test_route_access(self, path, access):
        assert route_access(path) == access

    def test_uploads_need_a_signed_in_admin(self, runtime, serve_app, tmp_path):
        create_accounts(runtime)
        app = serve_app(runtime, require_login=True)
        [image] = write_pngs(tmp_path / "up", 1)
        files = {"files": ("a.png", image.read_bytes(), "image/png")}
        assert httpx.post(f"{app.url}gradio_api/upload", files=files).status_code == 401
        reviewer = signed_in_cookies(app, *REVIEWER)
        assert httpx.post(f"{app.url}gradio_api/upload", files=files, cookies=reviewer).status_code == 403
        admin = signed_in_cookies(app, *ADMIN)
        uploaded = httpx.post(f"{app.url}gradio_api/upload", files=files, cookies=admin)
        assert uploaded.status_code == 200 and len(uploaded.json()) == 1
        auth.set_role(runtime, ADMIN[0], "reviewer")  # the cookie of a demoted admin opens nothing
        assert httpx.post(f"{app.url}gradio_api/upload", files=files, cookies=admin).status_code == 401

    def test_an_upload_over_the_size_limit_is_refused(self, runtime, serve_app):
        create_accounts(runtime)
        small = dataclasses.replace(runtime, settings=dataclasses.replace(runtime.settings, max_upload_mb=1))
        app = serve_app(small, require_login=True)
        files = {"files": ("big.png", b"\x89PNG" + b"\0" * (2 * 1024 * 1024), "image/png")}
        refused = httpx.post(f"{app.url}gradio_api/upload", files=files, cookies=signed_in_cookies(app, *ADMIN))
        assert refused.status_code == 413

    def test_the_routes_the_app_does_not_use_are_closed(self, runtime, serve_app):
        app = serve_app(runtime)
        for path in ("gradio_api/proxy=https://example.org/x", "monitoring", "gradio_api/stream/1/close"):
            assert httpx.post(f"{app.url}{path}").status_code == 404, path


def signed_in_cookies(app, username: str, password: str) -> dict[str, str]:
    """Sign in through the login event, as the page does, and return the cookie the page stores from it."""
    from gradio_client import Client

    result = Client(app.url, verbose=False).predict(username, password, api_name="/login")
    assert result[-1], f"{username} could not sign in: {result}"
    return {cookie_name_for(app.port): result[-1]}


@pytest.mark.browser
def test_the_review_image_is_served_to_the_signed_in_browser_only(runtime, tmp_path, serve_app, chromium_browser):
    from tests.test_ui_browser import sign_in

    create_accounts(runtime)
    seed_detection_project(runtime, tmp_path, n_items=2)
    app = serve_app(runtime, require_login=True)
    page = chromium_browser.new_page()
    try:
        sign_in(page, app.url, *REVIEWER)
        # The staged image of the item on screen: loaded by the browser, with the cookie its sign-in stored.
        page.wait_for_function(
            "() => [...document.querySelectorAll(\"img[src*='gradio_api/file=']\")].some(i => i.naturalWidth > 0)",
            timeout=TIMEOUT_MS,
        )
        source = page.locator("img[src*='gradio_api/file=']").first.evaluate("img => img.src")
        assert page.request.get(source).status == 200
        assert httpx.get(source).status_code == 401  # without the cookie: nothing
        page.locator("#logout").click()
        page.locator("#login-submit").wait_for(timeout=TIMEOUT_MS)
        assert page.request.get(source).status == 401  # signed out: the token was revoked and the cookie removed
    finally:
        page.close()
