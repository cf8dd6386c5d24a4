"""Runs the session tests of Starlette's, Flask's and Django's own test suites against
the drop-ins.

    .venv/bin/python tests/upstream/run_upstream.py [--baseline] [--suite starlette|flask|django]

The released source distributions of the *installed* versions are fetched once with
``pip download --no-deps --no-binary :all:`` into ``target/upstream/`` (never committed;
later runs work offline), their ``tests/`` folders extracted next to them, and pytest runs
the session tests in a subprocess with a plugin that swaps the drop-ins in:

* Starlette: ``tests/middleware/test_session.py``, with
  ``starlette.middleware.sessions.SessionMiddleware`` / ``Session`` replaced by
  ``ferrosession.starlette``'s (``plugin_starlette.py``);
* Flask: every test named ``*session*`` or ``*flash*`` in ``test_basic.py``,
  ``test_config.py``, ``test_helpers.py``, ``test_reqctx.py``,
  ``test_session_interface.py``, ``test_signals.py`` and ``test_testing.py``, with every
  app's ``session_interface`` (and ``flask.sessions.SecureCookieSessionInterface``, which
  tests subclass) being ``ferrosession.flask``'s (``plugin_flask.py``).

* Django: ``sessions_tests.tests.CookieSessionTests`` of the sdist's ``tests/``, run by
  Django's own ``runtests.py`` (unittest, ``test_sqlite`` settings) through
  ``django_runner.py``, which puts ``ferrosession.django.signed_cookies``'s
  ``SessionStore`` in place of Django's signed-cookie one before the tests import it.
  ``Suite.documented`` lists the outcomes that differ on purpose (the README says why).

A third plugin, ``plugin_pytest_compat.py``, is loaded in both modes: it only bridges the
upstream suites' assumptions about the installed pytest (Flask 3.1's conftest uses a name
that pytest 9 renamed).

``--baseline`` also runs them unmodified, so a failure that is not ours shows up as one.
A Markdown table of the outcomes goes to stdout. ``tests/upstream/test_upstream_suites.py``
runs the same from pytest (``make test``), skipping when the sdists cannot be fetched.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = REPO / "target" / "upstream"


@dataclasses.dataclass(frozen=True)
class Suite:
    """One upstream project: which tests, with which plugin."""

    dist: str
    plugin: str
    files: tuple[str, ...]
    keyword: Optional[str]
    # pytest options of the project's own configuration (its filterwarnings)
    ini: str
    # "pytest", or "django": Django's own runtests.py (``files`` are its test labels)
    runner: str = "pytest"
    # test -> why its outcome differs with the drop-in, on purpose (README says which)
    documented: tuple[tuple[str, str], ...] = ()


SUITES = {
    "starlette": Suite(
        dist="starlette",
        plugin="plugin_starlette",
        files=("tests/middleware/test_session.py",),
        keyword=None,
        ini="""[pytest]
addopts = -rXs --strict-markers
xfail_strict = true
filterwarnings =
    error
    ignore: Use 'content=<...>' to upload raw bytes/text content.:DeprecationWarning
    ignore: Using `httpx` with `starlette.testclient` is deprecated.*:{_STARLETTE_DEPRECATION}
""".format(_STARLETTE_DEPRECATION="starlette.exceptions.StarletteDeprecationWarning"),
    ),
    "flask": Suite(
        dist="flask",
        plugin="plugin_flask",
        files=(
            "tests/test_basic.py",
            "tests/test_config.py",
            "tests/test_helpers.py",
            "tests/test_reqctx.py",
            "tests/test_session_interface.py",
            "tests/test_signals.py",
            "tests/test_testing.py",
        ),
        keyword="session or flash",
        ini="""[pytest]
filterwarnings =
    error
""",
    ),
    "django": Suite(
        dist="django",
        plugin="django_runner",
        files=("sessions_tests.tests.CookieSessionTests",),
        keyword=None,
        ini="",
        runner="django",
        documented=(
            (
                "sessions_tests.tests.CookieSessionTests::test_actual_expiry",
                "an expected failure in Django (its engine ignores set_expiry, #19201); "
                "ferrosession's enforces it, so it passes: an unexpected success",
            ),
        ),
    ),
}


class FetchError(RuntimeError):
    """The sdist is not in the cache and could not be downloaded."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One test's result."""

    test: str
    outcome: str  # passed, failed, error, skipped
    message: str = ""


def installed_version(dist: str) -> str:
    return metadata.version(dist)


def sdist_path(dist: str, version: str, cache: Path = CACHE) -> Path:
    """The cached sdist of ``dist==version``, downloaded with pip if missing."""
    cache.mkdir(parents=True, exist_ok=True)
    for candidate in cache.glob("*.tar.gz"):
        if candidate.name.lower() == f"{dist}-{version}.tar.gz".lower():
            return candidate
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--no-binary", ":all:", "--dest", tmp, f"{dist}=={version}",
        ]  # fmt: skip
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FetchError(f"pip download {dist}=={version}: {exc}") from exc
        found = list(Path(tmp).glob("*.tar.gz"))
        if done.returncode != 0 or len(found) != 1:
            raise FetchError(
                f"pip download {dist}=={version} failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-800:]}"
            )
        target = cache / found[0].name
        shutil.move(str(found[0]), target)
        return target


def extract_tests(sdist: Path, cache: Path = CACHE) -> Path:
    """``tests/`` of the sdist under ``cache/<name>/`` (once); returns that folder."""
    name = sdist.name[: -len(".tar.gz")]
    root = cache / name
    marker = root / ".extracted"
    if marker.exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if len(parts) < 3 or parts[1] != "tests" or not (member.isfile() or member.isdir()):
                continue
            relative = Path(*parts[1:])
            if ".." in relative.parts:
                continue
            destination = root / relative
            if member.isdir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is not None:
                destination.write_bytes(source.read())
    marker.write_text(sdist.name + "\n")
    return root


def prepare(suite: str, cache: Path = CACHE) -> Path:
    """Fetches (if needed) and extracts the installed version's tests; returns the root."""
    dist = SUITES[suite].dist
    return extract_tests(sdist_path(dist, installed_version(dist), cache), cache)


def run_suite(suite: str, root: Path, *, swap: bool = True, timeout: float = 300) -> list[Outcome]:
    """Runs the suite's session tests under ``root`` (with the drop-ins when ``swap``)."""
    spec = SUITES[suite]
    if spec.runner == "django":
        return run_django(spec, root, swap=swap, timeout=timeout)
    ini = root / "upstream-pytest.ini"
    ini.write_text(spec.ini)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        cmd = [
            sys.executable, "-m", "pytest", "-c", str(ini), "--rootdir", str(root),
            "-p", "no:cacheprovider", "-p", "plugin_pytest_compat", f"--junitxml={report}",
            *spec.files,
        ]  # fmt: skip
        if spec.keyword:
            cmd += ["-k", spec.keyword]
        if swap:
            cmd += ["-p", spec.plugin]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
        env.pop("PYTEST_ADDOPTS", None)
        done = subprocess.run(
            cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if not report.exists():
            raise RuntimeError(
                f"pytest did not run ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        if swap != ("ferrosession drop-in: ferrosession." in done.stdout):
            raise RuntimeError(f"the drop-in plugin {'was not' if swap else 'was'} loaded")
        return parse_junit(report)


def run_django(spec: Suite, root: Path, *, swap: bool, timeout: float) -> list[Outcome]:
    """Django's tests run by its own ``runtests.py`` (unittest, test_sqlite settings),
    through ``django_runner.py``, which swaps the engine in when ``swap``."""
    cmd = [
        sys.executable, str(HERE / "django_runner.py"), *(["--swap"] if swap else []),
        *spec.files, "--settings=test_sqlite", "--parallel=1", "--verbosity=2",
    ]  # fmt: skip
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        cmd, cwd=root / "tests", env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    outcomes = parse_unittest(done.stderr)
    if not outcomes:
        raise RuntimeError(
            f"runtests.py did not run ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    if swap != ("ferrosession drop-in: ferrosession." in done.stdout):
        raise RuntimeError(f"the drop-in {'was not' if swap else 'was'} swapped in")
    return outcomes


_UNITTEST_TEST = re.compile(r"^(\w+) \(([\w.]+)\)")
_UNITTEST_RESULT = re.compile(
    r" \.\.\. (ok|FAIL|ERROR|expected failure|unexpected success|skipped (.*))$"
)
_UNITTEST_OUTCOME = {
    "ok": "passed",
    "FAIL": "failed",
    "ERROR": "error",
    "expected failure": "xfailed",
    "unexpected success": "unexpected success",
}


def parse_unittest(output: str) -> list[Outcome]:
    """The outcomes of a ``--verbosity=2`` unittest run: ``name (module.Class.name)``,
    maybe a docstring line, then `` ... ok`` (or ``FAIL``, ``skipped 'why'``, ...)."""
    outcomes = []
    current: Optional[str] = None
    for line in output.splitlines():
        test = _UNITTEST_TEST.match(line)
        if test:
            dotted = test.group(2)
            current = f"{dotted.rsplit('.', 1)[0]}::{test.group(1)}"
        result = _UNITTEST_RESULT.search(line)
        if current is not None and result:
            word = result.group(1)
            if word.startswith("skipped"):
                outcomes.append(Outcome(current, "skipped", (result.group(2) or "").strip("'\"")))
            else:
                outcomes.append(Outcome(current, _UNITTEST_OUTCOME[word]))
            current = None
    return outcomes


def acceptable(suite: str, outcome: Outcome) -> bool:
    """Passed, skipped or an expected failure; or a difference the README documents."""
    documented = dict(SUITES[suite].documented)
    return outcome.outcome in ("passed", "skipped", "xfailed") or outcome.test in documented


def parse_junit(path: Path) -> list[Outcome]:
    outcomes = []
    for case in ET.parse(path).getroot().iter("testcase"):
        test = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                text = (node.get("message") or "").strip()
                message = text.splitlines()[0][:160] if text else ""
                break
        outcomes.append(Outcome(test, outcome, message))
    return outcomes


def markdown(results: dict[str, dict[str, list[Outcome]]]) -> str:
    lines = []
    for suite, runs in results.items():
        version = installed_version(SUITES[suite].dist)
        drop_in = runs["drop-in"]
        passed = sum(o.outcome == "passed" for o in drop_in)
        lines.append(f"### {suite} {version}: {passed} of {len(drop_in)} pass with the drop-in\n")
        baseline = {o.test: o for o in runs.get("baseline", [])}
        header = "| test | drop-in |" + (" original |" if baseline else "")
        lines += [header, "|---|---|" + ("---|" if baseline else "")]
        for o in drop_in:
            cell = o.outcome + (f": {o.message}" if o.message else "")
            if o.test in dict(SUITES[suite].documented) and o.outcome != "passed":
                cell += f" (on purpose: {dict(SUITES[suite].documented)[o.test]})"
            row = f"| `{o.test}` | {cell} |"
            if baseline:
                b = baseline.get(o.test)
                row += f" {b.outcome if b else '-'} |"
            lines.append(row)
        lines.append("")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--suite", choices=sorted(SUITES), action="append")
    parser.add_argument("--baseline", action="store_true", help="also run them unmodified")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, list[Outcome]]] = {}
    ok = True
    for suite in args.suite or sorted(SUITES):
        start = time.monotonic()
        root = prepare(suite)
        runs = {"drop-in": run_suite(suite, root, swap=True)}
        if args.baseline:
            runs["baseline"] = run_suite(suite, root, swap=False)
        results[suite] = runs
        ok = ok and all(acceptable(suite, o) for o in runs["drop-in"])
        print(f"[upstream] {suite}: {time.monotonic() - start:.1f} s", file=sys.stderr)
    print(markdown(results))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
