"""The types are real: ``tests/typing_usage.py`` (a typed Starlette + Flask program)
passes ``mypy --strict``, a program with typical mistakes fails it on exactly those
lines, and the usage file also runs.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import typing_usage as usage

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
# A cache of its own (under the gitignored .mypy_cache) keeps reruns at a fraction of a second.
CACHE = REPO / ".mypy_cache" / "typing-usage"

MISTYPED = textwrap.dedent(
    """\
    from __future__ import annotations

    from dataclasses import dataclass

    import ferrosession as fs

    KEY = bytes(32)


    @dataclass(frozen=True)
    class Cart:
        items: list[str]


    def correct(s: fs.CurrentSessions) -> list[str]:
        cart = s.get(Cart)
        return cart.items if cart is not None else []


    def mistaken(s: fs.CurrentSessions) -> None:
        print(s.get(Cart).items)  # E: union-attr
        cart: Cart = s.get(Cart)  # E: assignment
        count: int = s.get(Cart)  # E: assignment arg-type
        s.clear(42)  # E: arg-type
        s.set()  # E: call-arg
        s.session_id()  # E: call-arg
        s.regenerate(Cart, "x")  # E: call-arg
        s.invalidate(Cart, 7)  # E: arg-type
        fs.get_sessions()  # E: call-arg


    fs.MessageAuthentication("a text key")  # E: arg-type
    fs.Encrypt(KEY, old_keys=KEY)  # E: arg-type
    fs.Sessions().cookie(Cart)  # E: call-arg
    fs.Sessions().cookie(Cart, "C", secure="yes")  # E: arg-type
    fs.Sessions().cookie(Cart, "C", max_age="1d")  # E: arg-type
    fs.DirectoryStorage(".s", cached="yes")  # E: arg-type
    fs.MemoryStorage(max_entries="10")  # E: arg-type
    fs.SessionMiddleware(object(), fs.Sessions())  # E: arg-type
    """
)
ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[\w-]+)\]$")


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[tuple[int, str]]]:
    """One ``mypy --strict`` run over the usage file and the mistyped one: the errors
    of each, as (line, code)."""
    mistyped = tmp_path_factory.mktemp("mypy") / "mistyped_usage.py"
    mistyped.write_text(MISTYPED)
    proc = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(CACHE),
            "--show-error-codes", "--no-pretty", "--no-error-summary",
            str(TESTS / "typing_usage.py"), str(mistyped),
        ],
        capture_output=True, text=True, cwd=REPO, timeout=180,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # 2 = mypy itself failed
    report: dict[str, set[tuple[int, str]]] = {"usage": set(), "mistyped": set(), "other": set()}
    for line in proc.stdout.splitlines():
        m = ERROR.match(line)
        if m is None:
            assert ": note:" in line, f"unexpected mypy output: {line}\n{proc.stdout}"
            continue
        which = {"typing_usage.py": "usage", "mistyped_usage.py": "mistyped"}
        report[which.get(Path(m["file"]).name, "other")].add((int(m["line"]), m["code"]))
    return report


def test_usage_file_is_clean_under_mypy_strict(
    mypy_report: dict[str, set[tuple[int, str]]],
) -> None:
    assert mypy_report["usage"] == set()
    assert mypy_report["other"] == set()  # e.g. nothing inside ferrosession itself


def test_typical_mistakes_are_type_errors(mypy_report: dict[str, set[tuple[int, str]]]) -> None:
    expected = {
        (number, code)
        for number, line in enumerate(MISTYPED.splitlines(), 1)
        if "# E:" in line
        for code in line.split("# E:")[1].split()
    }
    assert len(expected) >= 15
    assert mypy_report["mistyped"] == expected


# -- the usage file runs ------------------------------------------------------------------
def test_starlette_usage_runs(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    with TestClient(usage.make_starlette_app(tmp_path)) as client:
        assert client.get("/shop").text == "anonymous: empty"
        assert client.get("/shop/add/apple").text == "anonymous: apple"
        assert client.get("/shop/add/pear").text == "anonymous: apple, pear"
        sid = client.get("/login/ada").text
        assert re.fullmatch(r"[0-9a-f]{64}", sid)
        assert client.get("/shop").text == "ada (0): apple, pear"
        assert client.get("/shop/clear").text == "emptied"
        assert client.get("/shop").text == "ada (0): empty"
        assert client.get("/logout").text == "bye"
        assert client.get("/shop").text == "anonymous: empty"
        assert [client.get("/prefs").text for _ in range(3)] == ["light", "dark", "light"]
        first = client.get("/api/me")
        assert first.json() == {"client": None}
        token = first.headers["x-session"]
        again = client.get("/api/me", headers={"X-Session": token})
        assert again.json() == {"client": "cli", "scopes": ["read"]}


def test_bare_asgi_usage_runs(tmp_path: Path) -> None:
    from _driver import call

    assert call(usage.make_asgi_app(tmp_path)).body == b"anonymous"


def test_flask_usage_runs(tmp_path: Path) -> None:
    client = usage.make_flask_app(tmp_path).test_client()
    assert client.get("/me").text == "anonymous"
    assert client.get("/login/bob").text == "ok"
    assert client.get("/me").text == "bob (1)"
    assert client.get("/me").text == "bob (2)"
    assert client.get("/logout").text == "bye"
    assert client.get("/me").text == "anonymous"
