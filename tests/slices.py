"""Named parts of the test suite, for runs against an installed wheel instead of the
source tree: tests/test_wheels.py here, the ``test`` job of .github/workflows/release.yml.

``python tests/slices.py roundtrip`` prints the round-trip slice's files;
``python tests/slices.py portable`` prints pytest's ``--ignore`` options that leave the
tests needing no service (Redis, PostgreSQL, a browser, a fork-based server, a Rust
toolchain), which run on every OS.
"""

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

#: Import and round trip through ASGI and WSGI, the serializer's reader and writer in
#: Rust, and the many-threads stress test: what a fresh interpreter must pass with the
#: wheel alone (plus pytest, Hypothesis, Flask, and Starlette's test client).
ROUNDTRIP = [
    "test_config.py",
    "test_asgi.py",
    "test_wsgi.py",
    "test_serializers.py",
    "test_free_threading.py",
]

#: What the round-trip slice needs from the package index besides the wheel.
ROUNDTRIP_REQUIREMENTS = [
    "pytest>=8",
    "pytest-timeout>=2.3",  # the suite's configuration names its timeout
    "hypothesis>=6",
    "flask>=3",
    "starlette>=0.37",
    "httpx>=0.27",
    "httpx2",
]

#: Tests that need more than the wheel and the ``test`` group: a redis-server, a
#: PostgreSQL server, Chromium, gunicorn (fork: not on Windows), or the source tree and
#: a Rust toolchain (they build the wheel themselves).
NEEDS_SERVICES = [
    "test_redis_storage.py",
    "test_django.py",
    "test_valkey.py",
    "test_postgres_storage.py",
    "test_lifecycle_races.py",
    "test_lifetimes_agree.py",
    "test_server_lifecycle.py",
    "test_testing.py",
    "test_demo_browser.py",
    "test_flask_extension.py",
    "test_packaging.py",
    "test_wheels.py",
    "upstream",
]

#: Of those, the ones that build from the source tree: never run against a wheel.
BUILDS_FROM_SOURCE = ["test_packaging.py", "test_wheels.py"]


def ignore_options(names: list[str]) -> list[str]:
    return [f"--ignore=tests/{name}" for name in names]


if __name__ == "__main__":
    choice = sys.argv[1] if len(sys.argv) == 2 else ""
    if choice == "roundtrip":
        print(" ".join(f"tests/{name}" for name in ROUNDTRIP))
    elif choice == "portable":
        print(" ".join(ignore_options(NEEDS_SERVICES)))
    elif choice == "linux":
        print(" ".join(ignore_options(BUILDS_FROM_SOURCE)))
    else:
        sys.exit(f"usage: {sys.argv[0]} roundtrip|portable|linux")
