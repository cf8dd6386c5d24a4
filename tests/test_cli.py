"""The ``ferrosession`` command line: as a real subprocess (``python -m
ferrosession.cli``) and in-process (``main(argv)``), outputs and exit codes."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

import pytest

import ferrosession as fs
from _driver import call
from ferrosession import _core
from ferrosession.cli import COMMANDS, main, parse_key, split_cookie

KEY = bytes(range(32))
KEY2 = bytes(range(32, 64))
VECTORS = Path(__file__).resolve().parent / "vectors"
NOW = 1_700_000_000


def run(*args: str, stdin: Optional[str] = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ferrosession.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )


def inproc(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def inspect_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = inproc(capsys, "inspect", "--json", *args)
    return code, json.loads(out)


# -- the command and its help -------------------------------------------------------------


def test_help_everywhere_as_a_subprocess() -> None:
    top = run("--help")
    assert top.returncode == 0
    assert "keygen" in top.stdout and "inspect" in top.stdout
    for name in COMMANDS:
        r = run(name, "--help")
        assert r.returncode == 0, r.stderr
        assert f"usage: ferrosession {name}" in r.stdout
    assert "--old-key" in run("inspect", "--help").stdout
    assert "--bytes" in run("keygen", "--help").stdout


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = inproc(capsys)
    assert code == 2 and "COMMAND" in err
    code, _, err = inproc(capsys, "nope")
    assert code == 2 and "invalid choice" in err
    signed = fs.MessageAuthentication(KEY).transform_write("v")
    code, _, err = inproc(capsys, "inspect", "S=" + quote(signed, safe=""))  # no --key
    assert code == 2 and "a key is needed" in err and "--key" in err
    code, _, err = inproc(capsys, "inspect", "--key", "00", "--key-file", "k", "VALUE")
    assert code == 2 and "not allowed with" in err
    code, _, err = inproc(capsys, "keygen", "--bytes", "many")
    assert code == 2 and "invalid int" in err
    code, out, _ = inproc(capsys, "--version")
    assert code == 0 and fs.__version__ in out
    for name in COMMANDS:
        code, out, _ = inproc(capsys, name, "--help")
        assert code == 0 and out.startswith(f"usage: ferrosession {name}")


# -- keygen -------------------------------------------------------------------------------


def test_keygen_as_a_subprocess() -> None:
    r = run("keygen")
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(":", 1) for line in r.stdout.splitlines())
    hex_key, b64_key = lines["hex"].strip(), lines["base64url"].strip()
    assert re.fullmatch(r"[0-9a-f]{64}", hex_key)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", b64_key)
    key = bytes.fromhex(hex_key)
    assert base64.urlsafe_b64decode(b64_key + "=") == key
    # The Python line works as printed.
    transformer = eval(lines["python"].strip(), {"fs": fs})
    assert isinstance(transformer, fs.Encrypt)
    assert transformer.transform_read(fs.Encrypt(key).transform_write("v")) == "v"
    assert "secret" in r.stderr
    assert run("keygen").stdout != r.stdout


def test_keygen_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = inproc(capsys, "keygen", "--bytes", "16", "--format", "all")
    assert code == 0
    assert re.search(r"^hex: +[0-9a-f]{32}$", out, re.M)
    assert 'fs.MessageAuthentication(bytes.fromhex("' in out  # Encrypt takes 32 bytes only
    code, out, _ = inproc(capsys, "keygen", "--format", "hex")
    assert code == 0 and re.fullmatch(r"[0-9a-f]{64}\n", out)
    code, out, _ = inproc(capsys, "keygen", "--format", "base64url", "--bytes", "64")
    assert code == 0 and len(base64.urlsafe_b64decode(out.strip() + "==")) == 64
    keys = {inproc(capsys, "keygen", "--format", "hex")[1] for _ in range(50)}
    assert len(keys) == 50
    for bad in ("8", "15", "0", "-1", "5000"):
        code, out, err = inproc(capsys, "keygen", "--bytes", bad)
        assert code == 2 and out == "" and "--bytes must be between 16" in err


def test_keygen_uses_the_os_csprng(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fake(n: int) -> bytes:
        calls.append(n)
        return bytes(n)

    monkeypatch.setattr(_core, "random_bytes", fake)
    assert main(["keygen", "--format", "hex", "--bytes", "24"]) == 0
    assert calls == [24]


# -- key parsing and cookie splitting -------------------------------------------------------


def test_parse_key(monkeypatch: pytest.MonkeyPatch) -> None:
    key2 = bytes([0xFB, 0xEF, 0xFF] * 10 + [1, 2])
    b64url = base64.urlsafe_b64encode(key2).decode().rstrip("=")
    assert "-" in b64url and "_" in b64url
    assert parse_key(KEY.hex(), "k") == KEY
    assert parse_key(KEY.hex().upper(), "k") == KEY
    assert parse_key(b64url, "k") == key2
    assert parse_key(b64url + "=", "k") == key2
    assert parse_key(base64.b64encode(key2).decode(), "k") == key2
    assert parse_key(base64.b64encode(KEY2).decode(), "k") == KEY2
    assert parse_key("hex:" + KEY.hex(), "k") == KEY
    assert parse_key("base64:" + b64url, "k") == key2
    monkeypatch.setenv("FS_TEST_KEY", KEY.hex())
    assert parse_key("env:FS_TEST_KEY", "k") == KEY
    from ferrosession.cli import UsageError

    for bad in ("", "z", "hex:xyz", "not a key!", "a=b", "env:FS_TEST_UNSET_VAR"):
        with pytest.raises(UsageError):
            parse_key(bad, "--key")


@pytest.mark.parametrize(
    ("arg", "name", "encoding", "expected"),
    [
        ("abc", None, "uri", (None, "abc")),
        ("S=abc", None, "uri", ("S", "abc")),
        ("S=abc", "S", "uri", ("S", "abc")),
        ("a=1; S=abc; b=2", "S", "uri", ("S", "abc")),
        ("a=1; S=abc", None, "uri", ("a", "1")),
        ("Cookie: a=1; S=abc", "S", "uri", ("S", "abc")),
        ("Set-Cookie: S=abc; Max-Age=60; Path=/; HttpOnly", None, "uri", ("S", "abc")),
        ("  S=abc  ", None, "uri", ("S", "abc")),
        ("YWJj", None, "base64", (None, "YWJj")),
        ("YQ==", None, "base64", (None, "YQ==")),
        ("S=YQ==", "S", "base64", ("S", "YQ==")),
        ("T=abc", "S", "uri", ("T", "abc")),  # one cookie of another name: kept
    ],
)
def test_split_cookie(
    arg: str, name: Optional[str], encoding: str, expected: tuple[Optional[str], str]
) -> None:
    assert split_cookie(arg, name, encoding) == expected


def test_split_cookie_without_the_named_cookie(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = inproc(capsys, "inspect", "--key", KEY.hex(), "--name", "S", "a=1; b=2")
    assert code == 2 and "no cookie named 'S'" in err and "a, b" in err


# -- inspect: Encrypt ---------------------------------------------------------------------


def encrypt_value(payload: str, name: str = "S", now: int = NOW, **kw: Any) -> str:
    return fs.Encrypt(KEY, **kw)._core.write(payload, name, now)


def test_inspect_encrypt_as_a_subprocess() -> None:
    wire = encrypt_value('{"user":"jöhn"}')
    r = run("inspect", "--key", KEY.hex(), f"S={wire}")
    assert r.returncode == 0, r.stderr
    assert r.stdout == '{"user":"jöhn"}\n'
    assert "ok (encrypt)" in r.stderr and "key: --key" in r.stderr
    r = run("inspect", "--key", KEY2.hex(), f"S={wire}")
    assert r.returncode == 1 and r.stdout == ""
    assert "rejected (wrong_key)" in r.stderr
    # From standard input.
    r = run("inspect", "--key", KEY.hex(), "--name", "S", "-", stdin=wire + "\n")
    assert r.returncode == 0 and r.stdout == '{"user":"jöhn"}\n'


def test_inspect_encrypt_reasons(capsys: pytest.CaptureFixture[str]) -> None:
    wire = encrypt_value("v")
    timed = encrypt_value("v", max_age=600)
    key = KEY.hex()

    code, j = inspect_json(capsys, "--key", key, "--name", "S", wire)
    assert (code, j["ok"], j["payload"], j["reason"]) == (0, True, "v", None)
    assert j["transformer"] == "encrypt" and j["details"]["version"] == 1
    # Tampered: one character changed in the ciphertext.
    i = len(wire) - 5
    bad = wire[:i] + ("A" if wire[i] != "A" else "B") + wire[i + 1 :]
    code, j = inspect_json(capsys, "--key", key, "--name", "S", bad)
    assert (code, j["reason"]) == (1, "wrong_key_or_tampered")
    assert "tampered" in j["message"]
    # Wrong key; and a key that was removed from the old keys.
    code, j = inspect_json(capsys, "--key", KEY2.hex(), "--name", "S", wire)
    assert (code, j["reason"]) == (1, "wrong_key")
    assert "not configured" in j["message"]
    code, j = inspect_json(capsys, "--key", KEY2.hex(), "--old-key", key, "--name", "S", wire)
    assert (code, j["payload"], j["reissue"]) == (0, "v", True)
    assert j["details"]["key"] == "--old-key #1"
    # Wrong session name, told apart when the cookie carries its own name.
    code, j = inspect_json(capsys, "--key", key, "--name", "T", f"S={wire}")
    assert (code, j["reason"]) == (1, "wrong_session_name")
    assert "issued for 'S', not 'T'" in j["message"]
    code, j = inspect_json(capsys, "--key", key, "--name", "T", wire)
    assert (code, j["reason"]) == (1, "wrong_key_or_tampered")
    assert "session name other than 'T'" in j["message"]
    # Expiry, on a given clock.
    base = ["--key", key, "--name", "S", "--max-age", "600"]
    code, j = inspect_json(capsys, *base, "--now", str(NOW + 600), timed)
    assert (code, j["payload"]) == (0, "v")
    assert j["details"]["issued_at"] == NOW
    code, j = inspect_json(capsys, *base, "--now", str(NOW + 601), timed)
    assert (code, j["reason"]) == (1, "expired")
    assert "older than --max-age 600 s by 1 s" in j["message"]
    code, j = inspect_json(capsys, *base, "--now", str(NOW - 61), timed)
    assert (code, j["reason"]) == (1, "from_the_future")
    assert "61 s in the future" in j["message"]
    code, j = inspect_json(capsys, *base, "--now", str(NOW), wire)
    assert (code, j["reason"]) == (1, "no_issue_time")
    # Without --max-age a timed value opens (and would be re-issued without its time).
    code, j = inspect_json(capsys, "--key", key, "--name", "S", "--now", str(NOW + 10**6), timed)
    assert (code, j["payload"], j["reissue"]) == (0, "v", True)
    # Not an Encrypt value at all.
    code, j = inspect_json(capsys, "--key", key, "--name", "S", "--transformer", "encrypt", "a")
    assert (code, j["reason"]) == (1, "malformed")
    code, j = inspect_json(capsys, "--key", key, "--name", "S", wire + "=")
    assert (code, j["reason"]) == (1, "malformed")
    # The name is required for Encrypt.
    code, _, err = inproc(capsys, "inspect", "--key", key, wire)
    assert code == 2 and "--name" in err
    # A key of the wrong length is a usage error that says so.
    code, _, err = inproc(capsys, "inspect", "--key", KEY[:16].hex(), "--name", "S", wire)
    assert code == 2 and "exactly 32" in err


def test_inspect_a_set_cookie_line_from_the_middleware(capsys: pytest.CaptureFixture[str]) -> None:
    sessions = fs.Sessions()
    sessions.cookie(dict, "CART", transformers=[fs.Encrypt(KEY)])

    async def app(scope: Any, receive: Any, send: Any) -> None:
        fs.get_sessions(scope).set({"items": ["a b", "ü"]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    (line,) = call(fs.SessionMiddleware(app, sessions)).set_cookies
    code, out, err = inproc(capsys, "inspect", "--key", KEY.hex(), "Set-Cookie: " + line)
    assert code == 0, err
    assert json.loads(out) == {"items": ["a b", "ü"]}
    # A whole Cookie header: --name picks the session's cookie (else the first one).
    header = f"Cookie: a=1; {line.split(';')[0]}; b=2"
    code, out, _ = inproc(capsys, "inspect", "--key", KEY.hex(), "--name", "CART", header)
    assert code == 0 and json.loads(out) == {"items": ["a b", "ü"]}
    code, out, _ = inproc(capsys, "inspect", "--key", KEY.hex(), header)
    assert code == 1 and out == ""


def test_inspect_bad_encoding(capsys: pytest.CaptureFixture[str]) -> None:
    for value in ("S=%ZZ", "S=abc%", "S=%C3%28"):
        code, j = inspect_json(capsys, "--key", KEY.hex(), value)
        assert (code, j["reason"]) == (1, "bad_encoding"), value
    code, j = inspect_json(capsys, "--key", KEY.hex(), "--encoding", "base64", "!!!")
    assert (code, j["reason"]) == (1, "bad_encoding")
    code, j = inspect_json(capsys, "--key", KEY.hex(), "S=?")
    assert (code, j["reason"]) == (1, "malformed")  # no transformer's shape


def test_inspect_without_the_rust_helpers(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(_core, "encrypt_open", raising=False)
    code, _, err = inproc(capsys, "inspect", "--key", KEY.hex(), "S=" + encrypt_value("v"))
    assert code == 2 and "rebuild" in err


# -- inspect: MessageAuthentication -------------------------------------------------------


def test_inspect_mac(capsys: pytest.CaptureFixture[str]) -> None:
    mac = fs.MessageAuthentication(KEY)
    signed = mac.transform_write('{"user":"jöhn doe"}')
    cookie = "S=" + quote(signed, safe="")
    code, out, err = inproc(capsys, "inspect", "--key", KEY.hex(), cookie)
    assert code == 0 and out == '{"user":"jöhn doe"}\n'
    assert "algorithm: sha256" in err and "key: --key" in err
    # The raw (decoded) value works with --encoding raw too.
    code, out, _ = inproc(
        capsys, "inspect", "--key", KEY.hex(), "--encoding", "raw", "--transformer", "mac", signed
    )
    assert code == 0
    code, j = inspect_json(capsys, "--key", KEY2.hex(), cookie)
    assert (code, j["reason"]) == (1, "wrong_key_or_tampered")
    code, j = inspect_json(capsys, "--key", KEY2.hex(), "--old-key", KEY.hex(), cookie)
    assert (code, j["reissue"], j["details"]["key"]) == (0, True, "--old-key #1")
    tampered = "S=" + quote(signed.replace("jöhn", "john"), safe="")
    code, j = inspect_json(capsys, "--key", KEY.hex(), tampered)
    assert (code, j["reason"]) == (1, "wrong_key_or_tampered")
    code, j = inspect_json(capsys, "--key", KEY.hex(), "--transformer", "mac", "S=abc%2Fxyz")
    assert (code, j["reason"]) == (1, "malformed")
    # sha512 is recognised by the tag's length.
    long = fs.MessageAuthentication(KEY, algorithm="sha512").transform_write("v")
    code, j = inspect_json(capsys, "--key", KEY.hex(), "S=" + quote(long, safe=""))
    assert (code, j["details"]["algorithm"]) == (0, "sha512")


def test_inspect_mac_max_age(capsys: pytest.CaptureFixture[str]) -> None:
    timed = fs.MessageAuthentication(KEY, max_age=60)._core.write("v", "", NOW)
    cookie = "S=" + quote(timed, safe="")
    base = ["--key", KEY.hex(), "--max-age", "60"]
    code, j = inspect_json(capsys, *base, "--now", str(NOW + 60), cookie)
    assert (code, j["payload"], j["details"]["issued_at"]) == (0, "v", NOW)
    code, j = inspect_json(capsys, *base, "--now", str(NOW + 61), cookie)
    assert (code, j["reason"]) == (1, "expired")
    code, j = inspect_json(capsys, *base, "--now", str(NOW - 61), cookie)
    assert (code, j["reason"]) == (1, "from_the_future")
    untimed = "S=" + quote(fs.MessageAuthentication(KEY).transform_write("v"), safe="")
    code, j = inspect_json(capsys, *base, untimed)
    assert (code, j["reason"]) == (1, "no_issue_time")
    code, _, err = inproc(capsys, "inspect", *base[:2], "--max-age", "0", cookie)
    assert code == 2 and "positive" in err


# -- inspect: KtorEncrypt -----------------------------------------------------------------


def test_inspect_ktor_encrypt(capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads((VECTORS / "ktor_encrypt.json").read_text())
    v = doc["vectors"][0]
    key, sign, wire = v["encryption_key"], doc["sign_key"], v["wire"]
    cookie = "SESSION=" + quote(wire, safe="")
    code, out, err = inproc(capsys, "inspect", "--key", key, "--sign-key", sign, cookie)
    assert (code, out) == (0, v["plaintext"] + "\n"), err
    assert "does not authenticate its IV" in err and "aes_bits: 128" in err
    # The sign key is required, rotation does not exist.
    code, _, err = inproc(capsys, "inspect", "--key", key, cookie)
    assert code == 2 and "--sign-key" in err
    code, _, err = inproc(
        capsys, "inspect", "--key", key, "--sign-key", sign, "--old-key", key, cookie
    )
    assert code == 2 and "--old-key" in err
    # Wrong sign key; wrong AES key with the right sign key.
    code, j = inspect_json(capsys, "--key", key, "--sign-key", "00" * 11, cookie)
    assert (code, j["reason"]) == (1, "wrong_key_or_tampered")
    code, j = inspect_json(capsys, "--key", "11" * 16, "--sign-key", sign, cookie)
    assert (code, j["reason"]) == (1, "wrong_key")
    # Legacy MAC: said so without the flag, accepted with it.
    legacy = "SESSION=" + quote(wire.rsplit(":", 1)[0] + ":" + v["legacy_mac"], safe="")
    code, j = inspect_json(capsys, "--key", key, "--sign-key", sign, legacy)
    assert (code, j["reason"]) == (1, "legacy_format")
    code, j = inspect_json(
        capsys, "--key", key, "--sign-key", sign, "--backward-compatible-read", legacy
    )
    assert (code, j["payload"], j["reissue"]) == (0, v["plaintext"], True)
    for bad in doc["rejected"][:6]:
        code, j = inspect_json(
            capsys, "--key", key, "--sign-key", sign, "--transformer", "ktor-encrypt", bad or "x"
        )
        assert code == 1 and j["reason"] in ("malformed", "wrong_key_or_tampered", "bad_encoding")


def test_inspect_ktor_encrypt_as_a_subprocess() -> None:
    doc = json.loads((VECTORS / "ktor_encrypt.json").read_text())
    v = doc["vectors"][2]  # AES-192, unicode
    r = run("inspect", "--key", v["encryption_key"], "--sign-key", doc["sign_key"], v["wire"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == v["plaintext"] + "\n"
    assert "aes_bits: 192" in r.stderr


# -- inspect: what the value is, and where the key came from ------------------------------

STARLETTE_SECRET = "starlette: not hex, not base64!"
FLASK_SECRET = "flask secret ü"


def starlette_cookie(middleware: Any, data: dict[str, Any], **options: Any) -> str:
    """The ``Set-Cookie`` line a Starlette app with ``middleware`` (Starlette's own
    ``SessionMiddleware`` or our drop-in) sends after storing ``data``."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    def store(request: Request) -> PlainTextResponse:
        request.session.update(data)
        return PlainTextResponse("stored")

    app = Starlette(
        routes=[Route("/", store)],
        middleware=[Middleware(middleware, secret_key=STARLETTE_SECRET, **options)],
    )
    line: str = TestClient(app).get("/").headers["set-cookie"]
    return line


def flask_cookie(data: dict[str, Any], *, drop_in: bool = False) -> str:
    """The ``Set-Cookie`` line of a Flask app (its own session, or our drop-in)."""
    import flask

    app = flask.Flask("inspect_test")
    app.secret_key = FLASK_SECRET
    if drop_in:
        from ferrosession.flask import SessionInterface

        app.session_interface = SessionInterface()

    @app.route("/")
    def store() -> str:
        flask.session.update(data)
        return "stored"

    line: str = app.test_client().get("/").headers["Set-Cookie"]
    return line


def first_pair(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0]


def sessions_cookie(**registration: Any) -> tuple[fs.Sessions, str]:
    """A ferrosession registration ``S`` and the ``Set-Cookie`` line of a response that
    set ``{"items": ["a b", "ü"]}`` in it."""
    sessions = fs.Sessions()
    sessions.cookie(dict, "S", **registration)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        fs.get_sessions(scope).set({"items": ["a b", "ü"]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    (line,) = call(fs.SessionMiddleware(app, sessions)).set_cookies
    return sessions, line


@pytest.mark.parametrize("drop_in", [False, True], ids=["starlette", "ferrosession.starlette"])
def test_inspect_a_starlette_session_cookie(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, drop_in: bool
) -> None:
    from starlette.middleware import sessions

    import ferrosession.starlette

    middleware: Any = (
        ferrosession.starlette.SessionMiddleware if drop_in else sessions.SessionMiddleware
    )
    data = {"user": "?>", "n": 1}  # its standard base64 holds '+' (a space to the uri decoding)
    line = starlette_cookie(middleware, data)
    pair = first_pair(line)
    assert "+" in pair and "=." in pair
    code, j = inspect_json(capsys, "--key", STARLETTE_SECRET, "Set-Cookie: " + line)
    assert (code, j["ok"], j["transformer"]) == (0, True, "starlette"), j
    assert json.loads(j["payload"]) == data
    assert "Starlette's SessionMiddleware" in j["details"]["format"]
    assert j["details"]["key_source"] == "--key"
    # The bare value (its '=' padding is no NAME=VALUE), and the key from the environment.
    monkeypatch.setenv("FS_TEST_STARLETTE_SECRET", STARLETTE_SECRET)
    bare = pair.split("=", 1)[1]
    code, j = inspect_json(capsys, "--key", "env:FS_TEST_STARLETTE_SECRET", bare)
    assert (code, json.loads(j["payload"])) == (0, data)
    assert j["details"]["key_source"] == (
        "the environment variable FS_TEST_STARLETTE_SECRET (--key env:FS_TEST_STARLETTE_SECRET)"
    )
    # A retired secret still opens it, and says so.
    code, j = inspect_json(capsys, "--key", "new secret", "--old-key", STARLETTE_SECRET, pair)
    assert (code, j["details"]["key"]) == (0, "--old-key #1")
    # Another secret; one character changed; no key at all.
    code, j = inspect_json(capsys, "--key", "another secret", pair)
    assert (code, j["ok"], j["reason"]) == (1, False, "wrong_key_or_tampered")
    assert "does not verify" in j["message"]
    tampered = pair[:12] + ("A" if pair[12] != "A" else "B") + pair[13:]
    code, j = inspect_json(capsys, "--key", STARLETTE_SECRET, tampered)
    assert (code, j["reason"]) == (1, "wrong_key_or_tampered")
    code, out, err = inproc(capsys, "inspect", pair)
    assert code == 2 and out == ""
    assert "a key is needed" in err and "secret_key" in err
    # Starlette's max_age on the signed timestamp.
    issued = inspect_json(capsys, "--key", STARLETTE_SECRET, pair)[1]["details"]["issued_at"]
    base = ["--key", STARLETTE_SECRET, "--max-age", "60"]
    code, j = inspect_json(capsys, *base, "--now", str(issued + 60), pair)
    assert (code, json.loads(j["payload"])) == (0, data)
    code, j = inspect_json(capsys, *base, "--now", str(issued + 61), pair)
    assert (code, j["reason"]) == (1, "expired")
    code, j = inspect_json(capsys, *base, "--now", str(issued - 1), pair)
    assert (code, j["reason"]) == (1, "from_the_future")


@pytest.mark.parametrize("drop_in", [False, True], ids=["flask", "ferrosession.flask"])
def test_inspect_a_flask_session_cookie(capsys: pytest.CaptureFixture[str], drop_in: bool) -> None:
    small = {"user": "jöhn", "pair": [1, 2]}
    line = flask_cookie(small, drop_in=drop_in)
    code, j = inspect_json(capsys, "--key", FLASK_SECRET, "Set-Cookie: " + line)
    assert (code, j["transformer"]) == (0, "flask"), j
    assert json.loads(j["payload"]) == small
    assert "Flask's session cookie" in j["details"]["format"]
    assert "compressed" not in j["details"]
    # A long session is zlib-compressed (a leading '.').
    big = {"text": "abc " * 200}
    pair = first_pair(flask_cookie(big, drop_in=drop_in))
    assert pair.startswith("session=.")
    code, j = inspect_json(capsys, "--key", FLASK_SECRET, pair)
    assert (code, json.loads(j["payload"]), j["details"]["compressed"]) == (0, big, "zlib")
    # Flask's secret under Starlette's scheme, another secret, a changed value, no key.
    code, j = inspect_json(capsys, "--transformer", "starlette", "--key", FLASK_SECRET, pair)
    assert (code, j["reason"]) == (1, "wrong_key_or_tampered")
    code, j = inspect_json(capsys, "--key", "another secret", pair)
    assert (code, j["reason"]) == (1, "wrong_key_or_tampered")
    i = len("session=.") + 5
    tampered = pair[:i] + ("A" if pair[i] != "A" else "B") + pair[i + 1 :]
    code, j = inspect_json(capsys, "--key", FLASK_SECRET, tampered)
    assert (code, j["reason"]) == (1, "wrong_key_or_tampered")
    code, _, err = inproc(capsys, "inspect", pair)
    assert code == 2 and "a key is needed" in err and "SECRET_KEY" in err


def test_inspect_a_flask_cookie_as_a_subprocess_with_a_key_file(tmp_path: Path) -> None:
    line = flask_cookie({"cart": ["a", "b"]})
    key_file = tmp_path / "secret"
    key_file.write_text(FLASK_SECRET + "\n", encoding="utf-8")  # an editor's final newline
    r = run("inspect", "--key-file", str(key_file), first_pair(line))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"cart": ["a", "b"]}
    assert "ok (flask)" in r.stderr
    assert f"key_source: the file {key_file} (--key-file)" in r.stderr
    r = run("inspect", "--key-file", str(tmp_path / "missing"), first_pair(line))
    assert r.returncode == 2 and "cannot read" in r.stderr


def test_inspect_a_server_side_session_id(capsys: pytest.CaptureFixture[str]) -> None:
    storage = fs.MemoryStorage()
    sessions, line = sessions_cookie(storage=storage)
    pair = first_pair(line)
    session_id = pair.split("=", 1)[1]
    assert re.fullmatch(r"[0-9a-f]{64}", session_id)
    code, j = inspect_json(capsys, pair)
    assert (code, j["ok"], j["transformer"], j["payload"]) == (0, True, "session-id", None)
    assert j["details"]["format"] == "a server-side session id: its data is in the storage"
    assert j["details"]["id"] == session_id
    assert j["details"]["key_source"] == "none needed"
    # Its storage key finds the session in the real storage.
    key = j["details"]["storage_key"]
    assert key == sessions.storage_key("S", session_id)
    assert storage.read(key) is not None
    # Without its name, no storage key; a key given is not used.
    code, j = inspect_json(capsys, "--key", KEY.hex(), session_id)
    assert code == 0 and "--name" in j["details"]["storage_key"]
    assert j["details"]["key_source"] == "none needed (--key was not used)"
    code, j = inspect_json(capsys, "--name", "OTHER", session_id)
    assert j["details"]["storage_key"] != key
    assert storage.read(j["details"]["storage_key"]) is None
    # As text: nothing on stdout (no payload travels), what it is on stderr.
    code, out, err = inproc(capsys, "inspect", pair)
    assert (code, out) == (0, "")
    assert "a server-side session id: its data is in the storage" in err
    assert f"storage_key: {key}" in err and "unknown" not in err


def test_inspect_a_signed_server_side_session_id(capsys: pytest.CaptureFixture[str]) -> None:
    storage = fs.MemoryStorage()
    sessions, line = sessions_cookie(storage=storage, transformers=[fs.MessageAuthentication(KEY)])
    code, j = inspect_json(capsys, "--key", KEY.hex(), "Set-Cookie: " + line)
    assert (code, j["transformer"]) == (0, "mac"), j
    session_id = j["payload"]
    assert "server-side session id" in j["details"]["format"]
    assert j["details"]["storage_key"] == sessions.storage_key("S", session_id)
    assert storage.read(j["details"]["storage_key"]) is not None
    code, _, err = inproc(capsys, "inspect", first_pair(line))
    assert code == 2 and "a key is needed" in err and "server-side session id" in err


def test_inspect_an_unsigned_registration(capsys: pytest.CaptureFixture[str]) -> None:
    _, line = sessions_cookie(unsigned=True)
    code, j = inspect_json(capsys, first_pair(line))
    assert (code, j["transformer"]) == (0, "none"), j
    assert json.loads(j["payload"]) == {"items": ["a b", "ü"]}
    assert "unsigned" in j["details"]["format"] and "change it" in j["details"]["format"]
    assert j["details"]["key_source"] == "none needed"
    # Given a key, the user expects a signed value: it has no signed format's shape.
    code, j = inspect_json(capsys, "--key", KEY.hex(), first_pair(line))
    assert (code, j["reason"]) == (1, "malformed")
    assert "without a key" in j["message"]
    code, j = inspect_json(capsys, "--transformer", "none", "--key", KEY.hex(), first_pair(line))
    assert (code, json.loads(j["payload"])) == (0, {"items": ["a b", "ü"]})


def test_inspect_the_lifetimes_inside_a_signed_value(capsys: pytest.CaptureFixture[str]) -> None:
    _, line = sessions_cookie(transformers=[fs.MessageAuthentication(KEY)], idle_timeout=300)
    pair = first_pair(line)
    code, j = inspect_json(capsys, "--key", KEY.hex(), pair)
    assert (code, j["transformer"]) == (0, "mac"), j
    assert json.loads(j["payload"]) == {"items": ["a b", "ü"]}  # the envelope removed
    assert j["details"]["lifetimes_of"] == "S"
    created = j["details"]["created_at"]
    assert j["details"]["last_seen_at"] == created and "deadline_at" not in j["details"]
    base = ["--key", KEY.hex(), "--idle-timeout", "300"]
    code, j = inspect_json(capsys, *base, "--now", str(created + 300), pair)
    assert code == 0
    code, j = inspect_json(capsys, *base, "--now", str(created + 301), pair)
    assert (code, j["reason"]) == (1, "expired")
    assert "--idle-timeout 300" in j["message"]
    code, j = inspect_json(capsys, "--key", KEY.hex(), "--now", str(created - 61), pair)
    assert (code, j["reason"]) == (1, "from_the_future")
    # A MAC does not bind the name; the lifetimes do.
    code, j = inspect_json(capsys, "--key", KEY.hex(), "--name", "T", pair.split("=", 1)[1])
    assert (code, j["reason"]) == (1, "wrong_session_name")
    assert "issued for 'S', not 'T'" in j["message"]
    # A changed byte anywhere, the clocks included, breaks the tag.
    tampered = pair.replace(str(created), str(created + 1000), 1)
    code, j = inspect_json(capsys, "--key", KEY.hex(), tampered)
    assert (code, j["reason"]) == (1, "wrong_key_or_tampered")


def test_inspect_an_encrypted_value_with_lifetimes(capsys: pytest.CaptureFixture[str]) -> None:
    _, line = sessions_cookie(transformers=[fs.Encrypt(KEY)], absolute_timeout=3600)
    code, j = inspect_json(capsys, "--key", KEY.hex(), "Set-Cookie: " + line)
    assert (code, j["transformer"]) == (0, "encrypt"), j
    assert json.loads(j["payload"]) == {"items": ["a b", "ü"]}
    created = j["details"]["created_at"]
    base = ["--key", KEY.hex(), "--absolute-timeout", "3600", "Set-Cookie: " + line]
    code, j = inspect_json(capsys, "--now", str(created + 3601), *base)
    assert (code, j["reason"]) == (1, "expired") and "--absolute-timeout" in j["message"]
    code, _, err = inproc(capsys, "inspect", first_pair(line))
    assert code == 2 and "this is an Encrypt value: a key is needed" in err


def test_the_readme_inspect_lines_run(tmp_path: Path) -> None:
    """Each ``ferrosession inspect`` line of the README's "Command line" section, its
    ``NAME=…`` filled with a real cookie of that kind, exits 0."""
    import shlex

    from starlette.middleware.sessions import SessionMiddleware

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    lines = [
        ln.split("#", 1)[0] for ln in section.splitlines() if ln.startswith("ferrosession inspect")
    ]
    assert len(lines) == 3
    (tmp_path / "secret.txt").write_text(STARLETTE_SECRET + "\n", encoding="utf-8")
    _, signed = sessions_cookie(transformers=[fs.MessageAuthentication(KEY)])
    _, server_side = sessions_cookie(storage=fs.MemoryStorage())
    values = {
        "SESSION": first_pair(signed).split("=", 1)[1],
        "session": first_pair(starlette_cookie(SessionMiddleware, {"user": "ann"})).split("=", 1)[
            1
        ],
        "SESSION_ID": first_pair(server_side).split("=", 1)[1],
    }
    for line in lines:
        args = shlex.split(line)[1:]
        cookie_name = args[-1].split("=", 1)[0]
        args[-1] = f"{cookie_name}={values[cookie_name]}"
        done = subprocess.run(
            [sys.executable, "-m", "ferrosession.cli", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "KEY": KEY.hex(), "PYTHONIOENCODING": "utf-8"},
        )
        assert done.returncode == 0, (line, done.stderr)
        assert "key_source: " in done.stderr


def test_gc_removes_expired_sessions(tmp_path: Path) -> None:
    import ferrosession as fs

    folder = tmp_path / "sessions"
    storage = fs.DirectoryStorage(folder)
    storage.write("live", "kept", 3600)
    storage.write("old", "gone", 3600)
    # An entry expires at its file's mtime: move the "old" one's into the past.
    files = [p for p in folder.rglob("*") if p.is_file()]
    (old,) = [p for p in files if p.read_text().endswith("\ngone")]
    os.utime(old, (1, 1))
    done = subprocess.run(
        [sys.executable, "-m", "ferrosession.cli", "gc", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"removed 1 expired session from {folder}"
    assert not old.exists()
    assert fs.DirectoryStorage(folder).read("live") == "kept"


def test_gc_refuses_a_missing_folder(tmp_path: Path) -> None:
    from ferrosession.cli import main

    assert main(["gc", str(tmp_path / "nope")]) == 2
    assert not (tmp_path / "nope").exists()


def test_bench_refuses_outside_a_checkout_and_on_a_debug_build(tmp_path: Path) -> None:
    outside = subprocess.run(
        [sys.executable, "-m", "ferrosession.cli", "bench"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert outside.returncode == 2
    assert "source checkout" in outside.stderr or "debug build" in outside.stderr
    from ferrosession import _core

    if _core.build_profile == "debug":
        inside = subprocess.run(
            [sys.executable, "-m", "ferrosession.cli", "bench", "--quick"],
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert inside.returncode == 2 and "debug build" in inside.stderr
