"""ferrosession.flask.init_app: sessions opened and saved inside Flask's request handling,
so Flask's error handlers, signals and teardown see a storage that fails on the save."""

import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
from flask import (
    Flask,
    Response,
    got_request_exception,
    request,
    request_finished,
    stream_with_context,
)
from werkzeug.exceptions import InternalServerError

import ferrosession as fs
import ferrosession.flask
from conftest import free_port
from processes import terminate
from readme_examples import BLOCKS, module_name

KEY = bytes(range(32))
REPO = Path(__file__).resolve().parent.parent
MYPY_CACHE = REPO / ".mypy_cache" / "flask-quickstart"


@dataclass(frozen=True)
class Login:
    user: str


@dataclass(frozen=True)
class Theme:
    name: str


def make_sessions(folder: Path) -> fs.Sessions:
    sessions = fs.Sessions()
    sessions.cookie(Login, "SID", storage=fs.DirectoryStorage(folder))
    sessions.cookie(Theme, "THEME", transformers=[fs.MessageAuthentication(KEY)])
    return sessions


def add_views(app: Flask) -> None:
    @app.post("/login/<name>")
    def login(name: str) -> str:
        s = fs.get_sessions(request)
        s.set(Login(name))
        s.regenerate(Login)
        return "ok"

    @app.get("/me")
    def me() -> str:
        login = fs.get_sessions(request).get(Login)
        return login.user if login else "anonymous"

    @app.post("/logout")
    def logout() -> str:
        fs.get_sessions(request).clear(Login)
        return "bye"


def break_folder(folder: Path) -> None:
    """The storage's folder becomes a plain file: every write fails with ENOTDIR (for
    root too, unlike a read-only folder)."""
    shutil.rmtree(folder)
    folder.write_text("not a folder any more")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "sessions"


class Seen:
    """What Flask's handlers, signals and teardown were given during one app's requests."""

    def __init__(self, app: Flask) -> None:
        self.handled: list[BaseException] = []
        self.unhandled: list[BaseException] = []
        self.finished: list[int] = []
        self.teardown: list[Optional[BaseException]] = []
        got_request_exception.connect(self._exception, app)
        request_finished.connect(self._finished, app)
        app.teardown_request(self.teardown.append)

    def _exception(self, sender: Flask, exception: BaseException, **extra: Any) -> None:
        self.unhandled.append(exception)

    def _finished(self, sender: Flask, response: Response, **extra: Any) -> None:
        self.finished.append(response.status_code)


# -- the sessions work -------------------------------------------------------------------
def test_server_side_login_survives_requests_and_logout_ends_it(folder: Path) -> None:
    app = Flask(__name__)
    ferrosession.flask.init_app(app, make_sessions(folder))
    add_views(app)
    client = app.test_client()

    assert client.get("/me").text == "anonymous"
    logged_in = client.post("/login/ann")
    assert logged_in.headers["Cache-Control"] == "no-store"
    sid = client.get_cookie("SID")
    assert sid is not None and len(sid.value) == 64
    read = client.get("/me")
    assert read.text == "ann"
    assert read.headers.getlist("Vary") == ["Cookie"]
    assert "Set-Cookie" not in read.headers
    assert client.post("/logout").text == "bye"
    assert client.get("/me").text == "anonymous"
    client.set_cookie("SID", sid.value)  # the logged-out id is not adopted again
    assert client.get("/me").text == "anonymous"


def test_client_side_session_and_the_apps_own_vary_and_cache_control(folder: Path) -> None:
    app = Flask(__name__)
    ferrosession.flask.init_app(app, make_sessions(folder))

    @app.get("/theme/<name>")
    def set_theme(name: str) -> Response:
        fs.get_sessions(request).set(Theme(name))
        response = Response("set")
        response.headers["Cache-Control"] = "private, max-age=5"
        return response

    @app.get("/theme")
    def theme() -> Response:
        theme = fs.get_sessions(request).get(Theme)
        response = Response(theme.name if theme else "none")
        response.vary.add("Accept-Encoding")
        return response

    client = app.test_client()
    answered = client.get("/theme/dark")
    assert answered.headers.getlist("Cache-Control") == ["private, max-age=5"]
    assert answered.headers["Set-Cookie"].startswith("THEME=")
    read = client.get("/theme")
    assert read.text == "dark"
    assert read.headers.getlist("Vary") == ["Accept-Encoding, Cookie"]


# -- a failing save reaches Flask ----------------------------------------------------------
def test_write_failure_goes_to_the_apps_storage_error_handler(folder: Path) -> None:
    app = Flask(__name__)

    @app.after_request  # registered before init_app: runs after the save
    def stamp(response: Response) -> Response:
        response.headers["X-Stamp"] = "after"
        return response

    ferrosession.flask.init_app(app, make_sessions(folder))
    add_views(app)
    seen = Seen(app)

    @app.errorhandler(fs.StorageError)
    def sessions_down(error: fs.StorageError) -> tuple[str, int]:
        seen.handled.append(error)
        return "sessions are unavailable", 503

    assert app.test_client().post("/login/ann").text == "ok"
    break_folder(folder)
    answered = app.test_client().post("/login/bob")  # a new session: the create fails

    assert answered.status_code == 503
    assert answered.text == "sessions are unavailable"
    assert "Set-Cookie" not in answered.headers  # nothing half-saved is announced
    assert answered.headers["X-Stamp"] == "after"
    [error] = seen.handled
    assert isinstance(error, fs.StorageError) and "Not a directory" in str(error)
    assert seen.unhandled == []  # handled: Flask sends no got_request_exception
    assert seen.finished == [200, 503]
    assert seen.teardown == [None, None]


def test_write_failure_without_a_handler_is_flasks_own_500(folder: Path) -> None:
    app = Flask(__name__)
    ferrosession.flask.init_app(app, make_sessions(folder))
    add_views(app)
    seen = Seen(app)

    @app.errorhandler(500)
    def server_error(error: InternalServerError) -> tuple[str, int]:
        assert error.original_exception is not None
        seen.handled.append(error.original_exception)
        return "our 500 page", 500

    break_folder(folder)
    answered = app.test_client().post("/login/ann")

    assert answered.status_code == 500
    assert answered.text == "our 500 page"
    assert "Set-Cookie" not in answered.headers
    [error] = seen.handled
    assert isinstance(error, fs.StorageError)
    assert seen.unhandled == [error]
    assert seen.finished == [500]
    assert seen.teardown == [error]


def test_write_failure_propagates_in_testing_mode(folder: Path) -> None:
    app = Flask(__name__)
    app.testing = True  # PROPAGATE_EXCEPTIONS: Flask re-raises what no handler took
    ferrosession.flask.init_app(app, make_sessions(folder))
    add_views(app)
    break_folder(folder)
    with pytest.raises(fs.StorageError, match="Not a directory"):
        app.test_client().post("/login/ann")


def test_the_wsgi_middleware_is_outside_flask_its_failing_write_skips_the_handler(
    folder: Path,
) -> None:
    # why init_app exists: the middleware saves when Flask has already answered
    app = Flask(__name__)
    add_views(app)
    handled: list[BaseException] = []

    @app.errorhandler(fs.StorageError)
    def sessions_down(error: fs.StorageError) -> tuple[str, int]:
        handled.append(error)
        return "sessions are unavailable", 503

    middleware = fs.WSGISessionMiddleware(app.wsgi_app, make_sessions(folder))
    app.wsgi_app = middleware  # type: ignore[method-assign]
    break_folder(folder)
    with pytest.raises(fs.StorageError):
        app.test_client().post("/login/ann")
    assert handled == []


# -- where in Flask's request handling ----------------------------------------------------
def test_hooks_registered_after_init_app_use_sessions(folder: Path) -> None:
    app = Flask(__name__)
    too_late: list[BaseException] = []

    @app.after_request  # before init_app: runs after the save
    def late(response: Response) -> Response:
        try:
            fs.get_sessions(request).set(Theme("late"))
        except fs.TooLateSessionSet as exc:
            too_late.append(exc)
        return response

    ferrosession.flask.init_app(app, make_sessions(folder))
    add_views(app)

    @app.before_request
    def who() -> Optional[str]:
        login = fs.get_sessions(request).get(Login)
        if request.path == "/me" and login is None:
            return "anonymous (before_request)"
        return None

    @app.after_request  # after init_app: runs before the save
    def theme(response: Response) -> Response:
        fs.get_sessions(request).set(Theme("set in after_request"))
        return response

    client = app.test_client()
    assert client.get("/me").text == "anonymous (before_request)"
    assert client.post("/login/ann").text == "ok"
    assert client.get("/me").text == "ann"
    theme_cookie = client.get_cookie("THEME")
    assert theme_cookie is not None and "after_request" in theme_cookie.value
    assert len(too_late) == 3


def test_a_view_that_raises_keeps_what_it_set_like_flasks_session(folder: Path) -> None:
    class Refused(Exception):
        pass

    app = Flask(__name__)
    ferrosession.flask.init_app(app, make_sessions(folder))
    add_views(app)
    seen = Seen(app)

    @app.post("/half")
    def half() -> str:
        fs.get_sessions(request).set(Login("cat"))
        raise Refused("after the set")

    @app.errorhandler(Refused)
    def refused(error: Refused) -> tuple[str, int]:
        return "refused", 409

    client = app.test_client()
    answered = client.post("/half")
    assert (answered.status_code, answered.text) == (409, "refused")
    assert answered.headers["Set-Cookie"].startswith("SID=")
    assert client.get("/me").text == "cat"
    assert seen.teardown == [None, None]


def test_a_streamed_response_is_saved_before_its_body(folder: Path) -> None:
    app = Flask(__name__)
    ferrosession.flask.init_app(app, make_sessions(folder))
    add_views(app)

    @app.post("/stream")
    def stream() -> Response:
        s = fs.get_sessions(request)
        s.set(Login("dan"))

        def body() -> Iterator[str]:
            yield "streaming; "
            try:
                s.set(Login("too late"))
                yield "set while streaming"
            except fs.TooLateSessionSet:
                yield "too late to set"

        return Response(stream_with_context(body()))

    client = app.test_client()
    answered = client.post("/stream")
    assert answered.text == "streaming; too late to set"
    assert answered.headers["Set-Cookie"].startswith("SID=")
    assert client.get("/me").text == "dan"


def test_a_request_answered_before_the_sessions_open_passes(folder: Path) -> None:
    app = Flask(__name__)

    @app.before_request  # registered first, runs first and answers
    def maintenance() -> str:
        return "down for maintenance"

    ferrosession.flask.init_app(app, make_sessions(folder))
    add_views(app)
    answered = app.test_client().post("/login/ann")
    assert answered.text == "down for maintenance"
    assert "Set-Cookie" not in answered.headers


# -- set-up -------------------------------------------------------------------------------
def test_an_extension_object_sets_up_each_app_of_a_factory(folder: Path) -> None:
    sessions = make_sessions(folder)
    extension = ferrosession.flask.FlaskSessions(sessions=sessions)

    def create_app() -> Flask:
        app = Flask(__name__)
        extension.init_app(app)
        add_views(app)
        return app

    first, second = create_app(), create_app()
    assert first.extensions["ferrosession"] is sessions
    client = first.test_client()
    client.post("/login/eve")
    sid = client.get_cookie("SID")
    assert sid is not None
    other = second.test_client()
    other.set_cookie("SID", sid.value)
    assert other.get("/me").text == "eve"  # one storage, as two workers share it


def test_set_up_mistakes_are_configuration_errors(folder: Path) -> None:
    app = Flask(__name__)
    with pytest.raises(fs.ConfigurationError, match="init_app\\(app, sessions\\)"):
        ferrosession.flask.FlaskSessions().init_app(app)
    sessions = make_sessions(folder)
    ferrosession.flask.init_app(app, sessions)
    with pytest.raises(fs.ConfigurationError, match="once per app"):
        ferrosession.flask.init_app(app, sessions)
    with pytest.raises(fs.ConfigurationError, match="register every session before"):
        sessions.cookie(dict, "LATE", transformers=[fs.MessageAuthentication(KEY)])
    with pytest.raises(fs.ConfigurationError, match=r"must be a ferrosession\.Sessions"):
        ferrosession.flask.init_app(Flask(__name__), object())  # type: ignore[arg-type]


def test_init_app_and_the_middleware_on_one_app_is_refused_at_the_first_request(
    folder: Path,
) -> None:
    app = Flask(__name__)
    app.testing = True
    sessions = make_sessions(folder)
    ferrosession.flask.init_app(app, sessions)
    add_views(app)
    app.wsgi_app = fs.WSGISessionMiddleware(app.wsgi_app, sessions)  # type: ignore[method-assign]
    with pytest.raises(fs.ConfigurationError, match="keep init_app only"):
        app.test_client().get("/me")


# -- the README's Flask quickstart --------------------------------------------------------
QUICKSTART = next(i for i, b in enumerate(BLOCKS) if "ferrosession.flask.init_app" in b)


def test_quickstart_passes_mypy_strict(tmp_path: Path) -> None:
    path = tmp_path / f"{module_name(QUICKSTART)}.py"
    path.write_text(BLOCKS[QUICKSTART])
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(MYPY_CACHE), str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_quickstart_answers_503_when_its_folder_breaks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the quickstart keeps its sessions in ./.sessions
    module = _load_quickstart(tmp_path)
    assert module.app.test_client().post("/login/ann").text == "ok"
    break_folder(tmp_path / ".sessions")
    answered = module.app.test_client().post("/login/bob")
    assert (answered.status_code, answered.text) == (503, "sessions are unavailable, try again")


def _load_quickstart(folder: Path) -> Any:
    import importlib

    path = folder / f"{module_name(QUICKSTART)}.py"
    path.write_text(BLOCKS[QUICKSTART])
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(module_name(QUICKSTART))
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(module_name(QUICKSTART), None)


# Served by gunicorn: the quickstart, plus a header naming the worker that answered.
WORKER_APP = """
import os

from {module} import app


@app.after_request
def worker(response):
    response.headers["X-Worker"] = str(os.getpid())
    return response
"""
BOOTED = re.compile(r"Booting worker with pid: (\d+)")


class Gunicorn:
    """The quickstart under ``gunicorn -w 2`` (sync workers) on a free port."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log

    def workers(self) -> set[str]:
        return set(BOOTED.findall(self.log.read_text()))

    def request(self, method: str, path: str, cookie: str) -> tuple[str, str]:
        """(worker pid, body) of one request on a new connection, which any worker
        may take."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, headers={"Cookie": cookie, "Connection": "close"})
            response = conn.getresponse()
            assert response.status == 200, response.status
            return response.headers["X-Worker"], response.read().decode()
        finally:
            conn.close()

    def both_workers(self, method: str, path: str, cookie: str) -> dict[str, str]:
        """The body each worker answers. A sync worker serves one connection at a time:
        one that has accepted a half-sent request waits for the rest, so the request
        sent meanwhile goes to the other worker."""
        answers: dict[str, str] = {}
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as held:
                held.sendall(
                    f"{method} {path} HTTP/1.1\r\nHost: t\r\nCookie: {cookie}\r\n".encode()
                )
                time.sleep(0.2)  # for a worker to accept it (else: another round)
                worker, body = self.request(method, path, cookie)
                answers[worker] = body
                held.sendall(b"Connection: close\r\n\r\n")
                response = http.client.HTTPResponse(held)
                response.begin()
                answers[response.headers["X-Worker"]] = response.read().decode()
            if len(answers) == 2:
                return answers
        raise AssertionError(f"one worker answered every request: {answers}")


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Gunicorn]:
    (tmp_path / f"{module_name(QUICKSTART)}.py").write_text(BLOCKS[QUICKSTART])
    (tmp_path / "served.py").write_text(WORKER_APP.format(module=module_name(QUICKSTART)))
    server = Gunicorn(free_port(), tmp_path / "gunicorn.log")
    with server.log.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{server.port}",
                "served:app",
            ],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(tmp_path)},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while len(server.workers()) < 2:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start its 2 workers:\n{server.log.read_text()}")
            time.sleep(0.1)
        yield server
    finally:
        terminate(proc, grace=30)


def test_quickstart_under_two_gunicorn_workers_keeps_the_login(gunicorn: Gunicorn) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gunicorn.port, timeout=10)
    deadline = time.monotonic() + 30
    while True:  # the workers have booted; the app may still be importing
        try:
            conn.request("POST", "/login/ann")
            break
        except ConnectionRefusedError:
            assert time.monotonic() < deadline, gunicorn.log.read_text()
            time.sleep(0.1)
    logged_in = conn.getresponse()
    assert logged_in.read() == b"ok"
    cookie = logged_in.headers["Set-Cookie"].split(";", 1)[0]
    conn.close()

    answers = gunicorn.both_workers("GET", "/me", cookie)
    assert set(answers) == gunicorn.workers()
    assert set(answers.values()) == {"ann"}, answers

    assert gunicorn.request("POST", "/logout", cookie)[1] == "bye"
    after = gunicorn.both_workers("GET", "/me", cookie)
    assert set(after.values()) == {"anonymous"}, after
