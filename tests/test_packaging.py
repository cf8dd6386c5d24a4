"""Packaging: the abi3 wheel and the sdist hold what users need, and the public API
works from a fresh virtual environment outside the source tree.

The wheel is built with maturin's default (dev) profile to stay fast; ``make wheel``
builds the release one the same way. The fresh venv gets the wheel (and orjson, and the
``demo`` extra, from the package index or pip's cache) and runs a script that
exercises the API with nothing from the source tree importable. The stub of the Rust
module is checked with ``mypy.stubtest``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MATURIN = BIN / "maturin"
# The one version number: Cargo.toml's (pyproject.toml declares it dynamic).
_VERSION = re.search(r'^version = "([^"]+)"', (REPO / "Cargo.toml").read_text(), re.M)
assert _VERSION is not None  # [package] comes first in Cargo.toml
VERSION = _VERSION[1]
PACKAGE_FILES = sorted(
    p.relative_to(REPO / "python").as_posix()
    for p in (REPO / "python" / "ferrosession").rglob("*")
    if p.is_file() and (p.suffix in (".py", ".pyi") or p.name == "py.typed")
    if "__pycache__" not in p.parts
)


def run(
    cmd: list[object],
    *,
    timeout: float,
    cwd: Optional[Path] = None,
    env: Optional[dict[str, str]] = None,
) -> subprocess.CompletedProcess[str]:
    """Runs ``cmd``; a failure shows its output."""
    args = [str(c) for c in cmd]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")


@dataclass
class Dist:
    wheel: Path
    sdist: Path


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "CARGO_TARGET_DIR": str(target_dir())}
    run([MATURIN, "build", "--out", out], cwd=REPO, env=env, timeout=600)
    run([MATURIN, "sdist", "--out", out], cwd=REPO, env=env, timeout=120)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return Dist(wheel, sdist)


def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        return sorted(z.namelist())


def test_wheel_is_abi3_for_cpython_310_and_up(dist: Dist) -> None:
    assert re.fullmatch(
        rf"ferrosession-{re.escape(VERSION)}-cp310-abi3-(manylinux|musllinux|linux|macosx|win)"
        r"[\w.]*\.whl",
        dist.wheel.name,
    ), dist.wheel.name
    with zipfile.ZipFile(dist.wheel) as z:
        wheel_meta = z.read(f"ferrosession-{VERSION}.dist-info/WHEEL").decode()
        metadata = z.read(f"ferrosession-{VERSION}.dist-info/METADATA").decode()
        entry_points = z.read(f"ferrosession-{VERSION}.dist-info/entry_points.txt").decode()
    tags = re.findall(r"^Tag: (\S+)$", wheel_meta, re.M)
    assert tags and all(t.startswith("cp310-abi3-") for t in tags), wheel_meta
    assert "Root-Is-Purelib: false" in wheel_meta
    assert "Requires-Python: >=3.10" in metadata
    assert re.search(r"^Requires-Dist: orjson>=3\.9$", metadata, re.M), metadata
    # Only what users install; the tools to work on ferrosession are dependency groups.
    extras = set(re.findall(r"^Provides-Extra: (\S+)$", metadata, re.M))
    assert extras == {"redis", "postgres", "demo"}, extras
    assert re.search(r"^License-Expression: MIT$", metadata, re.M), metadata
    assert re.search(r"^License-File: LICENSE$", metadata, re.M), metadata
    assert "Typing :: Typed" in metadata
    assert re.search(rf"^Version: {re.escape(VERSION)}$", metadata, re.M), metadata
    check_classifiers_and_urls(metadata)
    # Every console script points at a module the wheel ships.
    for module in re.findall(r"^\w[\w-]* = ([\w.]+):\w+$", entry_points, re.M):
        assert module.replace(".", "/") + ".py" in wheel_names(dist.wheel), module


def check_classifiers_and_urls(metadata: str) -> None:
    """PyPI refuses an upload with an unknown classifier; the listed Pythons are the
    supported ones; the page links the repository, the docs site and the changelog."""
    from trove_classifiers import classifiers as known

    listed = re.findall(r"^Classifier: (.+)$", metadata, re.M)
    assert not set(listed) - known, set(listed) - known
    minors = sorted(int(c.rsplit(".", 1)[1]) for c in listed if re.search(r":: 3\.\d+$", c))
    assert minors == [10, 11, 12, 13, 14], minors
    urls = dict(re.findall(r"^Project-URL: ([^,]+), (\S+)$", metadata, re.M))
    assert set(urls) == {"Homepage", "Documentation", "Repository", "Issues", "Changelog"}, urls
    assert all(u.startswith("https://") for u in urls.values()), urls


def test_the_version_is_kept_in_one_place() -> None:
    """Cargo.toml has the number; pyproject.toml takes it (dynamic) and the module
    exposes it; the changelog's newest entry is that version."""
    pyproject = (REPO / "pyproject.toml").read_text()
    assert not re.search(r"^version\s*=", pyproject, re.M), "a second version number"
    assert re.search(r'^dynamic = \[.*"version".*\]$', pyproject, re.M), "dynamic version"
    import ferrosession

    assert ferrosession.__version__ == VERSION
    changelog = (REPO / "CHANGELOG.md").read_text()
    newest = re.search(r"^## \[(\d[^\]]*)\]", changelog, re.M)
    assert newest is not None and newest[1] == VERSION, "CHANGELOG.md's newest entry"


def test_wheel_holds_the_package_and_nothing_else(dist: Dist) -> None:
    names = wheel_names(dist.wheel)
    assert "ferrosession/py.typed" in names
    assert "ferrosession/_core.pyi" in names
    with zipfile.ZipFile(dist.wheel) as z:
        shipped = z.read(f"ferrosession-{VERSION}.dist-info/licenses/LICENSE")
    assert shipped == (REPO / "LICENSE").read_bytes()
    extensions = [n for n in names if re.fullmatch(r"ferrosession/_core\.[\w.-]*(so|pyd)", n)]
    assert extensions in (["ferrosession/_core.abi3.so"], ["ferrosession/_core.pyd"]), extensions
    missing = sorted(set(PACKAGE_FILES) - set(names))
    assert not missing, f"source files missing from the wheel: {missing}"
    stray = [
        n
        for n in names
        if not (n.startswith(("ferrosession/", f"ferrosession-{VERSION}.dist-info/")))
        or "__pycache__" in n
        or n.endswith(".pyc")
    ]
    assert not stray, stray


def test_sdist_holds_the_sources_and_builds_the_same_wheel(dist: Dist, tmp_path: Path) -> None:
    root = f"ferrosession-{VERSION}"
    assert dist.sdist.name == f"{root}.tar.gz"
    with tarfile.open(dist.sdist) as tar:
        names = set(tar.getnames())
        tar.extractall(tmp_path, filter="data")
    for required in (
        "PKG-INFO", "pyproject.toml", "Cargo.toml", "Cargo.lock", "README.md", "LICENSE",
        "src/lib.rs",
    ):  # fmt: skip
        assert f"{root}/{required}" in names, required
    rust = [p.relative_to(REPO).as_posix() for p in (REPO / "src").rglob("*.rs")]
    missing = [
        f for f in [*rust, *(f"python/{p}" for p in PACKAGE_FILES)] if f"{root}/{f}" not in names
    ]
    assert not missing, f"missing from the sdist: {missing}"
    stray = [
        n
        for n in names
        if re.search(r"(^|/)(target|\.venv|\.sessions|__pycache__|\.git)(/|$)|\.(so|pyd|pyc)$", n)
    ]
    assert not stray, stray
    # The sdist alone is enough to build the wheel (its own cached target dir).
    out = tmp_path / "out"
    env = {**os.environ, "CARGO_TARGET_DIR": str(target_dir() / "sdist-check")}
    run([MATURIN, "build", "--out", out], cwd=tmp_path / root, env=env, timeout=600)
    (rebuilt,) = out.glob("*.whl")
    assert rebuilt.name == dist.wheel.name

    def files(wheel: Path) -> list[str]:
        return [n for n in wheel_names(wheel) if "/sboms/" not in n]

    assert files(rebuilt) == files(dist.wheel)


API_CHECK = r"""
import asyncio, hashlib, hmac, json, sys, tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_plus

import ferrosession as fs
from ferrosession import _core

source, version = Path(sys.argv[1]), sys.argv[2]
here = Path(fs.__file__).resolve().parent
assert Path(sys.prefix).resolve() in here.parents, here
assert source not in here.parents and source not in [Path(p) for p in sys.path], sys.path

names = {}
exec("from ferrosession import *", names)
missing = [n for n in fs.__all__ if n not in names or getattr(fs, n) is not names[n]]
assert not missing, missing
assert fs.__version__ == version, fs.__version__

KEY = bytes(range(32))

@dataclass(frozen=True)
class Cart:
    items: list

@dataclass(frozen=True)
class Login:
    user: str

folder = Path(tempfile.mkdtemp())
sessions = fs.Sessions()
sessions.cookie(Cart, "CART", transformers=[fs.MessageAuthentication(KEY)])
sessions.cookie(Login, "SID", storage=fs.DirectoryStorage(folder, cached=True))
sessions.header(dict, "X-Api", transformers=[fs.Encrypt(KEY)])

async def inner(scope, receive, send):
    s = fs.get_sessions(scope)
    if scope["path"] == "/set":
        s.set(Cart(items=["apple"]))
        s.set(Login(user="ada"))
        s.regenerate(Login)
        s.set({"n": 1})
    body = repr((s.get(Cart), s.get(Login), s.get("X-Api"))).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})

app = fs.SessionMiddleware(inner, sessions)

def call(path, headers=()):
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(k.encode(), v.encode()) for k, v in headers],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }
    sent = []
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        sent.append(message)
    asyncio.run(app(scope, receive, send))
    start, body = sent[0], sent[1]["body"].decode()
    return [(k.decode(), v.decode()) for k, v in start["headers"]], body

headers, body = call("/set")
cookies = [v for k, v in headers if k == "set-cookie"]
payload = '{"items":["apple"]}'
signed = payload + "/" + hmac.new(KEY, payload.encode(), hashlib.sha256).hexdigest()
cart_line = next(c for c in cookies if c.startswith("CART="))
assert cart_line.startswith("CART=" + quote_plus(signed, safe="") + "; Max-Age=604800; "), cart_line
assert cart_line.endswith("; Path=/; HttpOnly; SameSite=Lax"), cart_line
sid_line = next(c for c in cookies if c.startswith("SID="))
sid = sid_line.split(";")[0][4:]
assert len(sid) == 64, sid_line
api = dict(headers)["x-api"]

cookie = "; ".join(c.split(";")[0] for c in cookies)
_, body = call("/", [("cookie", cookie), ("x-api", api)])
assert body == "(Cart(items=['apple']), Login(user='ada'), {'n': 1})", body
_, body = call("/", [("cookie", cookie.replace(sid, "0" * 64))])
assert body == "(Cart(items=['apple']), None, None)", body

print(json.dumps({
    "profile": _core.build_profile,
    "typed": sorted(p.name for p in here.iterdir() if p.name in ("py.typed", "_core.pyi")),
    "file": str(here),
}))
"""


@pytest.fixture(scope="module")
def fresh_venv(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new venv outside the source tree with the wheel and its ``demo`` extra."""
    root = tmp_path_factory.mktemp("fresh")
    assert REPO not in root.parents
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=60)
    python = venv / "bin" / "python"
    run(
        [
            sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
            "--disable-pip-version-check", "--no-input", "--only-binary", ":all:",
            f"ferrosession[demo] @ {dist.wheel.as_uri()}",
        ],
        timeout=120,
    )  # fmt: skip
    yield python


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}


def test_public_api_works_from_a_fresh_venv(fresh_venv: Path, tmp_path: Path) -> None:
    script = tmp_path / "api_check.py"
    script.write_text(API_CHECK)
    proc = run([fresh_venv, "-I", script, REPO, VERSION], cwd=tmp_path, env=clean_env(), timeout=60)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["profile"] == "debug"  # maturin build without --release
    assert report["typed"] == ["_core.pyi", "py.typed"]
    assert report["file"].startswith(str(fresh_venv.parent.parent))


def readme_install_section() -> str:
    text = (REPO / "README.md").read_text()
    section = re.search(r"^## Install\n(.*?)^## ", text, re.M | re.S)
    assert section is not None, "README has no ## Install section"
    return section[1]


def test_readme_install_says_what_works_today() -> None:
    """Until a release is published, the README must not present ``pip install
    ferrosession`` as the way in: it says so, and that line comes after the label."""
    section = readme_install_section()
    assert "not on PyPI yet" in section
    label = section.index("Once ferrosession is released (not yet)")
    assert section.index("pip install ferrosession ") > label
    assert section.index("pip install .") < label


def test_readme_install_from_a_clone_works(tmp_path: Path) -> None:
    """The README's ``pip install .``, run in a clone (the last commit, as a user gets it)
    with a fresh venv: pip builds through the PEP 517 backend in its own isolated build
    environment. The one change from the README: a dev-profile build (the backend's
    default is the slow release one), through maturin's ``MATURIN_PEP517_ARGS``."""
    (command,) = [
        line.split("#")[0].split()
        for line in readme_install_section().splitlines()
        if line.startswith("pip install .")
    ]
    assert command == ["pip", "install", "."], command
    clone = tmp_path / "clone"
    run(["git", "clone", "--quiet", REPO, clone], timeout=120)
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=60)
    python = venv / "bin" / "python"
    env = {
        **clean_env(),
        "CARGO_TARGET_DIR": str(target_dir() / "clone-check"),
        "MATURIN_PEP517_ARGS": "--profile dev",
    }
    run(
        [
            sys.executable, "-m", "pip", "--python", python, *command[1:], "--quiet",
            "--disable-pip-version-check", "--no-input",
        ],
        cwd=clone, env=env, timeout=900,
    )  # fmt: skip
    script = tmp_path / "api_check.py"
    script.write_text(API_CHECK)
    proc = run([python, "-I", script, clone, VERSION], cwd=tmp_path, env=clean_env(), timeout=60)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["profile"] == "debug"  # the build above, not some other install
    assert report["file"].startswith(str(venv))


def test_demo_and_command_run_from_a_fresh_venv(fresh_venv: Path, tmp_path: Path) -> None:
    env = clean_env()
    # The demo's page through its ASGI app (httpx, for TestClient, is not in the extra).
    check = textwrap.dedent(
        """
        import asyncio
        from ferrosession.demo.app import create_app
        app = create_app("sessions")
        sent = []
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}
        async def send(m):
            sent.append(m)
        scope = {"type": "http", "method": "GET", "path": "/shop", "raw_path": b"/shop",
                 "query_string": b"", "headers": [(b"host", b"127.0.0.1")], "scheme": "http",
                 "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1), "root_path": "",
                 "asgi": {"version": "3.0"}, "http_version": "1.1"}
        asyncio.run(app(scope, receive, send))
        assert sent[0]["status"] == 200, sent[0]
        assert b"ferroshop" in b"".join(m.get("body", b"") for m in sent[1:])
        print("ok")
        """
    )
    proc = run([fresh_venv, "-I", "-c", check], cwd=tmp_path, env=env, timeout=60)
    assert proc.stdout.strip() == "ok"
    assert (tmp_path / "sessions" / "demo.key").is_file()
    run([fresh_venv, "-I", "-m", "ferrosession.demo", "--help"], cwd=tmp_path, env=env, timeout=60)
    command = fresh_venv.parent / "ferrosession"
    assert command.is_file(), "the ferrosession console script was not installed"
    run([command, "--help"], cwd=tmp_path, env=env, timeout=60)
    proc = run([command, "--version"], cwd=tmp_path, env=env, timeout=60)
    assert proc.stdout.strip() == f"ferrosession {VERSION}", proc.stdout


def test_installed_wheel_is_typed_for_mypy(fresh_venv: Path, tmp_path: Path) -> None:
    """mypy, pointed at the fresh venv, finds the wheel's types (PEP 561: py.typed)."""
    user = tmp_path / "user_code.py"
    user.write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass
            from typing import Optional
            import ferrosession as fs
            from ferrosession import _core

            @dataclass(frozen=True)
            class Cart:
                items: list[str]

            def total(s: fs.CurrentSessions) -> int:
                cart: Optional[Cart] = s.get(Cart)
                profile: str = _core.build_profile
                return len(cart.items) + len(profile)
            """
        )
    )
    proc = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--no-incremental",
            "--python-executable", str(fresh_venv), "--python-version", "3.10", str(user),
        ],
        capture_output=True, text=True, cwd=tmp_path, env=clean_env(), timeout=120,
    )  # fmt: skip
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and "[union-attr]" in errors[0], proc.stdout + proc.stderr


def test_core_stub_matches_the_extension() -> None:
    """``_core.pyi`` says what the built extension (``make develop``) really has."""
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "ferrosession._core"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
