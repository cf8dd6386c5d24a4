"""The demo shop in a real browser: headless Chromium (Debian's ``chromium``) driven by
Playwright, against ``python -m ferrosession.demo`` (what ``make demo`` runs) in a
subprocess, with its sessions in a temporary folder.

Playwright never downloads a browser here: it launches the system Chromium by path
(``FERROSESSION_CHROMIUM`` overrides ``/usr/bin/chromium``). A missing browser or
Playwright is a failure that says what to install, never a skip. Screenshots go to
``tests/output/`` (gitignored).

The last tests drive the same app in-process for what a browser would not show
(cross-site forms, open redirects, the key file).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

import ferrosession as fs
from processes import free_port, terminate, wait_listening

OUTPUT = Path(__file__).resolve().parent / "output"
CHROMIUM = os.environ.get("FERROSESSION_CHROMIUM") or "/usr/bin/chromium"
HEX64 = re.compile(r"^[0-9a-f]{64}$")
TIMEOUT_MS = 10_000


class DemoServer:
    """``python -m ferrosession.demo`` on a fixed port, restartable on the same folder."""

    def __init__(self, folder: Path, log_dir: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"demo-{self.port}.log"
        self._proc: Optional[subprocess.Popen[bytes]] = None

    def start(self, timeout: float = 15.0) -> None:
        cmd = [
            sys.executable, "-m", "ferrosession.demo",
            "--host", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.folder.parent
            )
        failure = wait_listening(self._proc, self.port, timeout)
        if failure:
            self.stop()
            raise RuntimeError(f"the demo {failure}:\n{self.output()}")

    def stop(self) -> None:
        terminate(self._proc)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def session_files(folder: Path) -> list[Path]:
    """The DirectoryStorage entries under ``folder`` (sharded two levels deep)."""
    return [p for p in folder.glob("*/*/*") if p.is_file() and not p.name.startswith(".")]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless system Chromium through Playwright; fails (not skips) when missing."""
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install Debian's browser with "
            "`apt-get install -y chromium` (`make test` does it), or point "
            "FERROSESSION_CHROMIUM at a Chromium binary",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "Playwright for Python is missing: `pip install playwright` into .venv "
            "(`make test` does it; never `playwright install`: the system Chromium is used)",
            pytrace=False,
        )
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoServer]:
    server = DemoServer(tmp_path / "sessions", tmp_path)
    server.start()
    yield server
    server.stop()
    assert "Traceback" not in server.output(), server.output()


def cookie(context: Any, name: str) -> Optional[dict[str, Any]]:
    found = [c for c in context.cookies() if c["name"] == name]
    assert len(found) <= 1, found
    return found[0] if found else None


def test_shop_login_restart_logout_in_chromium(browser: Any, demo: DemoServer) -> None:
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "demo-failure.png").unlink(missing_ok=True)
    base = demo.base_url
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        # -- a cart in a signed cookie, sent only under /shop --------------------------
        page.goto(f"{base}/shop")
        assert page.inner_text("#cart-empty") == "Your cart is empty."
        page.click("#add-apple")
        page.click("#add-apple")
        page.click("#add-cheese")
        assert page.inner_text("#qty-apple") == "2"
        assert page.inner_text("#qty-cheese") == "1"
        assert page.inner_text("#cart-total") == "€7.10"
        cart_cookie = cookie(context, "SESSION_CART")
        assert cart_cookie is not None
        assert (cart_cookie["path"], cart_cookie["httpOnly"]) == ("/shop", False)
        assert "SESSION_CART=" in page.evaluate("document.cookie")
        assert "SESSION_CART=" in page.inner_text("#js-cookie")

        # -- log in; an id planted beforehand is not adopted (regenerate) -------------
        planted = "a" * 64
        context.add_cookies([{"name": "SESSION_ID", "value": planted, "url": base}])
        page.fill("#user", "Ada")
        page.click("#login")
        page.wait_for_url(f"{base}/shop?note=logged-in")
        assert page.inner_text("#user-name") == "Ada"
        login_cookie = cookie(context, "SESSION_ID")
        assert login_cookie is not None
        login_id = login_cookie["value"]
        assert HEX64.match(login_id) and login_id != planted
        assert (login_cookie["path"], login_cookie["httpOnly"]) == ("/", True)
        assert login_cookie["sameSite"] == "Lax"
        assert len(session_files(demo.folder)) == 1
        # HttpOnly: sent by the browser, invisible to scripts.
        assert "SESSION_ID" not in page.evaluate("document.cookie")
        assert "SESSION_ID" not in page.inner_text("#js-cookie")
        assert f"SESSION_ID={login_id}" in page.inner_text("#raw-cookie")
        assert page.inner_text("#qty-apple") == "2"  # the cart did not move

        # -- outside /shop the cart cookie is held but not sent -------------------------
        page.goto(f"{base}/")
        raw = page.inner_text("#raw-cookie")
        assert f"SESSION_ID={login_id}" in raw
        assert "SESSION_CART" not in raw
        assert "not sent to this page" in page.inner_text("#cart")
        assert page.evaluate("document.cookie") == ""
        assert cookie(context, "SESSION_CART") is not None

        # -- reload, then restart the server on the same folder: still logged in --------
        page.reload()
        views = int(page.inner_text("#page-views"))
        assert views >= 2
        demo.stop()
        demo.start()
        page.goto(f"{base}/shop")
        assert page.inner_text("#user-name") == "Ada"
        assert page.inner_text("#qty-apple") == "2"  # the key survived in the folder
        assert cookie(context, "SESSION_ID")["value"] == login_id  # type: ignore[index]
        assert '"page_views":' in page.inner_text("#login-value")
        page.screenshot(path=str(OUTPUT / "demo-shop.png"), full_page=True)

        # -- a changed cart cookie is rejected ------------------------------------------
        page.click("#tamper")
        page.wait_for_selector("#cart-rejected")
        assert page.query_selector("#qty-apple") is None
        page.click("#empty")
        page.wait_for_url(f"{base}/shop?note=emptied")
        assert cookie(context, "SESSION_CART") is None

        # -- check out: the order goes into the server-side login -----------------------
        page.click("#add-honey")
        page.click("#checkout")
        page.wait_for_url(f"{base}/?note=ordered")
        assert "1 \u00d7 Honey" in page.inner_text("#orders")
        assert cookie(context, "SESSION_CART") is None
        page.screenshot(path=str(OUTPUT / "demo-home.png"), full_page=True)

        # -- the API session travels in a header, not a cookie --------------------------
        page.goto(f"{base}/api")
        page.click("#api-call")
        page.locator("#api-log").filter(has_text='{"calls":1}').wait_for()
        page.click("#api-call")
        page.locator("#api-log").filter(has_text='{"calls":2}').wait_for()
        assert HEX64.match(page.inner_text("#api-token"))
        assert {c["name"] for c in context.cookies()} == {"SESSION_ID"}
        page.screenshot(path=str(OUTPUT / "demo-api.png"), full_page=True)

        # -- log out: the session ends, and its old cookie opens nothing ----------------
        page.click("#logout")
        page.wait_for_url(f"{base}/api?note=logged-out")
        assert page.is_visible("#login")
        assert page.query_selector("#user-name") is None
        assert cookie(context, "SESSION_ID") is None
        assert session_files(demo.folder) == []
        context.add_cookies([{"name": "SESSION_ID", "value": login_id, "url": base}])
        page.goto(f"{base}/")
        assert f"SESSION_ID={login_id}" in page.inner_text("#raw-cookie")  # it was sent
        assert page.query_selector("#user-name") is None
        assert "no session for it" in page.inner_text("#login-value")
        assert cookie(context, "SESSION_ID") is None  # and the browser was told to drop it
        page.screenshot(path=str(OUTPUT / "demo-home-after-logout.png"), full_page=True)
        assert errors == []
    except BaseException:
        page.screenshot(path=str(OUTPUT / "demo-failure.png"), full_page=True)
        print(demo.output())
        raise
    finally:
        context.close()


def test_where_you_are_logged_in_and_logging_out_elsewhere(browser: Any, demo: DemoServer) -> None:
    """Three browsers (separate cookie jars) log in as one user: each lists the three
    sessions; "Log out" on one row ends that browser's session alone, and "log out
    everywhere else" ends the rest but the asking one (principal, sessions_of,
    invalidate_one and invalidate_all through DirectoryStorage's owner index)."""
    base = demo.base_url
    contexts = [browser.new_context(viewport={"width": 1200, "height": 900}) for _ in range(3)]
    try:
        pages = []
        for context in contexts:
            page = context.new_page()
            page.goto(f"{base}/")
            page.fill("#user", "Grace")
            page.click("#login")
            page.wait_for_url(f"{base}/?note=logged-in")
            pages.append(page)
        on_laptop, on_phone, on_tablet = pages
        on_laptop.reload()
        assert on_laptop.locator("#devices tr.current").count() == 1
        assert on_laptop.locator("#devices tr.other").count() == 2
        assert "(this browser)" in on_laptop.inner_text("#devices tr.current")
        # the phone's row, found by the id hash the phone shows for itself
        on_phone.reload()
        phone_hash = on_phone.inner_text("#devices tr.current code").rstrip("…")
        row = on_laptop.locator("#devices tr.other", has_text=phone_hash)
        row.locator("button.end-session").click()
        on_laptop.wait_for_url(f"{base}/?note=logged-out-device")
        assert on_laptop.locator("#devices tr.other").count() == 1
        on_phone.reload()
        assert on_phone.is_visible("#login")  # the phone's session is gone
        on_tablet.reload()
        assert on_tablet.inner_text("#user-name") == "Grace"  # the tablet's is not
        on_laptop.click("#logout-others")
        on_laptop.wait_for_url(f"{base}/?note=logged-out-elsewhere")
        assert on_laptop.locator("#devices tr.other").count() == 0
        assert on_laptop.inner_text("#user-name") == "Grace"  # this one stays
        on_tablet.reload()
        assert on_tablet.is_visible("#login")  # the tablet's session is gone
        assert "no session for it" in on_tablet.inner_text("#login-value")
        on_laptop.screenshot(path=str(OUTPUT / "demo-devices.png"), full_page=True)
    finally:
        for context in contexts:
            context.close()


# -- in-process checks of the same app ---------------------------------------------------
@pytest.fixture
def client(tmp_path: Path) -> Iterator[Any]:
    from starlette.testclient import TestClient

    from ferrosession.demo.app import create_app

    with TestClient(create_app(tmp_path / "s"), base_url="http://127.0.0.1:8000") as c:
        yield c


def test_cross_site_form_posts_are_refused(client: Any) -> None:
    bad = client.post("/login", data={"user": "mallory"}, headers={"Origin": "https://evil"})
    assert bad.status_code == 403
    assert "set-cookie" not in bad.headers
    ok = client.post("/login", data={"user": "ann"}, headers={"Origin": "http://127.0.0.1:8000"})
    assert ok.status_code == 200  # followed the 303 to /
    assert "Logged in as" in ok.text
    for path in ("/logout", "/logout-others", "/logout-device"):
        refused = client.post(path, data={"session": "x"}, headers={"Origin": "https://evil"})
        assert refused.status_code == 403, path
    assert "Logged in as" in client.get("/").text  # still logged in


def test_login_redirects_only_to_local_paths(client: Any) -> None:
    for target, expected in (
        ("/shop", "/shop?note=logged-in"),
        ("https://evil.example/", "/?note=logged-in"),
        ("//evil.example/", "/?note=logged-in"),
        ("/\\evil.example", "/?note=logged-in"),
    ):
        r = client.post("/login", data={"user": "a", "next": target}, follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, expected)


def test_pages_escape_what_users_type(client: Any) -> None:
    r = client.post("/login", data={"user": "<script>alert(1)</script>"})
    assert "<script>alert(1)" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    assert "nonce-" in r.headers["content-security-policy"]


def test_api_counter_in_a_header(client: Any) -> None:
    first = client.get("/api/counter")
    token = first.headers["x-session"]
    assert HEX64.match(token) and first.json() == {"calls": 1}
    assert "set-cookie" not in first.headers
    second = client.get("/api/counter", headers={"X-Session": token})
    assert second.json() == {"calls": 2}
    assert client.delete("/api/counter", headers={"X-Session": token}).json() == {"ended": True}
    again = client.get("/api/counter", headers={"X-Session": token})
    assert again.json() == {"calls": 1} and again.headers["x-session"] != token


def test_key_file_is_kept_and_checked(tmp_path: Path) -> None:
    from ferrosession.demo.app import create_app

    folder = tmp_path / "s"
    create_app(folder)
    key_file = folder / "demo.key"
    key = key_file.read_text()
    assert (key_file.stat().st_mode & 0o777, len(bytes.fromhex(key))) == (0o600, 32)
    create_app(folder)
    assert key_file.read_text() == key
    key_file.write_text("not hex")
    with pytest.raises(fs.ConfigurationError, match="delete it"):
        create_app(folder)


def test_demo_command_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ferrosession.demo", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "--port" in out and "--dir" in out
