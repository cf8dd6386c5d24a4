"""The release artefacts as ``make wheel`` builds them: the abi3 manylinux2014 wheel
installs and passes the round-trip slice on every CPython of this machine, the sdist
alone builds a wheel in a clean folder, and the workflows that build the other
platforms pass actionlint.

The wheel is built once per test session into ``target/release-dist`` by the Makefile's
own ``wheel`` target (cargo's cache under ``target/`` keeps a rebuild short).
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from slices import BUILDS_FROM_SOURCE, NEEDS_SERVICES, ROUNDTRIP, ROUNDTRIP_REQUIREMENTS
from test_packaging import API_CHECK, VERSION, clean_env, run, target_dir

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
VENV_BIN = Path(sys.executable).parent
WORKFLOWS = REPO / ".github" / "workflows"


def interpreters() -> dict[str, Path]:
    """Every CPython >= 3.10 here, by version ("3.12", "3.14t"): pyenv's, this venv's
    base interpreter and any ``python3.N`` on PATH."""
    candidates = [Path(getattr(sys, "_base_executable", sys.executable))]
    candidates += sorted(Path.home().glob(".pyenv/versions/3.*/bin/python3"))
    candidates += [Path(p) for m in range(10, 16) if (p := shutil.which(f"python3.{m}"))]
    found: dict[str, Path] = {}
    probe = "import sys, sysconfig; print('%d.%d%s' % (*sys.version_info[:2], 't' if sysconfig.get_config_var('Py_GIL_DISABLED') else ''))"  # noqa: E501
    for candidate in candidates:
        try:
            out = subprocess.run(
                [candidate, "-I", "-c", probe], capture_output=True, text=True, timeout=30
            )
        except OSError:
            continue
        version = out.stdout.strip()
        if out.returncode == 0 and re.fullmatch(r"3\.(1\d|[2-9]\d)t?", version):
            found.setdefault(version, candidate)
    return dict(
        sorted(found.items(), key=lambda kv: [int(x) for x in kv[0].rstrip("t").split(".")])
    )


PYTHONS = interpreters()


@dataclass
class ReleaseDist:
    wheel: Path
    sdist: Path


@pytest.fixture(scope="session")
def release_dist() -> ReleaseDist:
    out = target_dir() / "release-dist"
    # -o: the venv is already set up (make test did it); do not reinstall from here.
    run(
        ["make", "--no-print-directory", "-o", ".venv/.deps-stamp", "wheel", f"WHEEL_DIR={out}"],
        cwd=REPO,
        timeout=900,
    )
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return ReleaseDist(wheel, sdist)


def test_make_wheel_builds_an_abi3_manylinux_2_17_wheel(release_dist: ReleaseDist) -> None:
    arch = platform.machine()
    assert release_dist.wheel.name == (
        f"ferrosession-{VERSION}-cp310-abi3-manylinux2014_{arch}.manylinux_2_17_{arch}.whl"
    )
    with zipfile.ZipFile(release_dist.wheel) as z:
        wheel_meta = z.read(f"ferrosession-{VERSION}.dist-info/WHEEL").decode()
        extension = z.read("ferrosession/_core.abi3.so")
    assert re.findall(r"^Tag: (\S+)$", wheel_meta, re.M) == [
        f"cp310-abi3-manylinux2014_{arch}",
        f"cp310-abi3-manylinux_2_17_{arch}",
    ]
    # The tag is only a claim: the symbols the extension needs from glibc are what an old
    # system's loader checks.
    so = release_dist.wheel.parent / "_core.abi3.so"
    so.write_bytes(extension)
    symbols = run(["objdump", "-T", so], timeout=60).stdout
    versions = {
        tuple(map(int, v.split("."))) for v in re.findall(r"GLIBC_(\d+(?:\.\d+)+)", symbols)
    }
    assert versions and max(versions) <= (2, 17), sorted(versions)
    assert release_dist.sdist.name == f"ferrosession-{VERSION}.tar.gz"


def test_this_machine_has_the_pythons_the_issue_names() -> None:
    """3.10 to 3.13 are on this kind of machine (pyenv and the system's 3.11)."""
    assert {"3.10", "3.11", "3.12", "3.13"} <= set(PYTHONS), PYTHONS


@pytest.mark.parametrize("version", list(PYTHONS))
def test_wheel_passes_the_roundtrip_slice(
    version: str, release_dist: ReleaseDist, tmp_path: Path
) -> None:
    """A fresh venv of that interpreter, the wheel and pytest + Flask from the index;
    the package's API check, then the round-trip slice of the suite, run from the
    checkout's tests/ with nothing of python/ importable."""
    venv = tmp_path / "venv"
    run([PYTHONS[version], "-m", "venv", "--without-pip", venv], timeout=120)
    python = venv / "bin" / "python"
    run(
        [
            sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
            "--disable-pip-version-check", "--no-input", "--only-binary", ":all:",
            release_dist.wheel, *ROUNDTRIP_REQUIREMENTS,
        ],
        timeout=300,
    )  # fmt: skip
    script = tmp_path / "api_check.py"
    script.write_text(API_CHECK)
    proc = run([python, "-I", script, REPO, VERSION], cwd=tmp_path, env=clean_env(), timeout=120)
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["profile"] == "release"
    assert report["file"].startswith(str(venv))
    # -I: no PYTHONPATH, no current folder; -B: no bytecode of other versions in tests/.
    where = run(
        [python, "-I", "-B", "-c", "import ferrosession; print(ferrosession.__file__)"],
        cwd=REPO,
        env=clean_env(),
        timeout=60,
    )
    assert where.stdout.strip().startswith(str(venv)), where.stdout
    run(
        [
            python, "-I", "-B", "-m", "pytest", "-q", "-p", "no:cacheprovider",
            *(f"tests/{name}" for name in ROUNDTRIP),
        ],
        cwd=REPO, env=clean_env(), timeout=600,
    )  # fmt: skip


#: The newest CPython here that Django 6 runs on (it needs 3.12 or later); the rest of
#: the suite runs Django 5.2 LTS on this venv's Python.
DJANGO_6_PYTHON = max(
    (v for v in PYTHONS if not v.endswith("t") and tuple(map(int, v.split("."))) >= (3, 12)),
    key=lambda v: tuple(map(int, v.split("."))),
    default=None,
)


@pytest.mark.skipif(DJANGO_6_PYTHON is None, reason="no CPython >= 3.12 on this machine")
def test_django_6_on_a_python_that_runs_it(release_dist: ReleaseDist, tmp_path: Path) -> None:
    """The Django integration's tests (tests/test_django.py) pass with Django 6 too, on
    the newest CPython here that runs it, with the wheel installed in a fresh venv."""
    assert DJANGO_6_PYTHON is not None
    venv = tmp_path / "venv"
    run([PYTHONS[DJANGO_6_PYTHON], "-m", "venv", "--without-pip", venv], timeout=120)
    python = venv / "bin" / "python"
    run(
        [
            sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
            "--disable-pip-version-check", "--no-input", "--only-binary", ":all:",
            release_dist.wheel, "django>=6,<7", "pytest>=8", "pytest-timeout>=2.3",
            "redis>=5",
        ],
        timeout=300,
    )  # fmt: skip
    version = run([python, "-I", "-c", "import django; print(django.__version__)"], timeout=60)
    assert version.stdout.strip().startswith("6."), version.stdout
    run(
        [
            python, "-I", "-B", "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "tests/test_django.py",
        ],
        cwd=REPO, env=clean_env(), timeout=600,
    )  # fmt: skip


def test_sdist_alone_builds_a_wheel_in_a_clean_folder(
    release_dist: ReleaseDist, tmp_path: Path
) -> None:
    """What pip does where no wheel fits: the sdist, copied alone to an empty folder,
    built through the PEP 517 backend in pip's isolated build environment (maturin
    from the index). A dev-profile build, through ``MATURIN_PEP517_ARGS``, to stay fast."""
    folder = tmp_path / "clean"
    folder.mkdir()
    sdist = Path(shutil.copy(release_dist.sdist, folder))
    env = {
        **clean_env(),
        "CARGO_TARGET_DIR": str(target_dir() / "sdist-alone"),
        "MATURIN_PEP517_ARGS": "--profile dev",
    }
    run(
        [
            sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
            "--disable-pip-version-check", "--no-input", "--wheel-dir", folder / "out", sdist,
        ],
        cwd=folder, env=env, timeout=900,
    )  # fmt: skip
    (built,) = (folder / "out").glob("*.whl")
    assert built.name.startswith(f"ferrosession-{VERSION}-cp310-abi3-"), built.name
    with zipfile.ZipFile(built) as z, tarfile.open(release_dist.sdist) as tar:
        names = set(z.namelist())
        python_sources = {
            n.split("/python/", 1)[1] for n in tar.getnames() if "/python/ferrosession/" in n
        }
    assert python_sources and python_sources <= names, python_sources - names
    assert "ferrosession/_core.abi3.so" in names


def test_the_service_list_names_every_test_that_needs_a_service() -> None:
    """tests/slices.py's NEEDS_SERVICES is what CI leaves out off Linux: a new test file
    that starts Redis, PostgreSQL, Chromium or gunicorn, or builds with maturin, must be
    in it, else macOS and Windows fail on a missing program."""
    markers = re.compile(
        r"redis_servers|postgres_server|playwright|[\"']gunicorn|MATURIN|RedisServer"
    )
    needing = {p.name for p in TESTS.glob("test_*.py") if markers.search(p.read_text())}
    needing -= {"test_wheels.py"}
    assert needing <= set(NEEDS_SERVICES), sorted(needing - set(NEEDS_SERVICES))
    assert set(BUILDS_FROM_SOURCE) <= set(NEEDS_SERVICES)
    assert not set(ROUNDTRIP) & set(NEEDS_SERVICES)


def test_workflows_pass_actionlint() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert files
    proc = subprocess.run(
        [VENV_BIN / "actionlint", "-no-color", *files],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def load_workflow(name: str) -> dict[Any, Any]:
    loaded = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_release_workflow_builds_every_platform_and_publishes_safely() -> None:
    """The matrix the issue asks for, free-threaded builds beside the abi3 ones, and a
    publish that only a version tag reaches, after the tests, without a stored token."""
    flow = load_workflow("release.yml")
    jobs = flow["jobs"]
    targets = {
        (name, p["target"])
        for name in ("linux", "musllinux", "windows", "macos")
        for p in jobs[name]["strategy"]["matrix"]["platform"]
    }
    assert targets >= {
        ("linux", "x86_64"), ("linux", "aarch64"), ("musllinux", "x86_64"),
        ("musllinux", "aarch64"), ("macos", "x86_64"), ("macos", "aarch64"),
        ("windows", "x64"), ("windows", "aarch64"),
    }, targets  # fmt: skip
    for name in ("linux", "musllinux", "windows", "macos"):
        args = [s.get("with", {}).get("args", "") for s in jobs[name]["steps"]]
        assert any("-i python3.14t" in a for a in args), name
        assert any("--release" in a and "-i " not in a for a in args), name
    assert "sdist" in jobs
    publish = jobs["publish"]
    assert set(publish["needs"]) >= {"linux", "musllinux", "windows", "macos", "sdist", "test"}
    assert "refs/tags/v" in publish["if"]
    assert publish["permissions"]["id-token"] == "write"
    assert publish["permissions"]["attestations"] == "write"
    text = (WORKFLOWS / "release.yml").read_text()
    assert "secrets." not in text, "trusted publishing: no stored token"
    tested = jobs["test"]["strategy"]["matrix"]["python"]
    assert {"3.10", "3.11", "3.12", "3.13", "3.14", "3.14t"} <= set(tested), tested


def test_docs_workflow_publishes_the_site_on_a_release() -> None:
    flow = load_workflow("docs.yml")
    triggers = flow[True] if True in flow else flow["on"]  # YAML 1.1 reads `on` as true
    assert "v*" in triggers["push"]["tags"]
    steps = [s.get("uses", "") for job in flow["jobs"].values() for s in job["steps"]]
    assert any(s.startswith("actions/deploy-pages@") for s in steps), steps
    assert "mkdocs build --strict" in (WORKFLOWS / "docs.yml").read_text()


def test_dependabot_watches_the_actions() -> None:
    config = yaml.safe_load((REPO / ".github" / "dependabot.yml").read_text())
    ecosystems = {u["package-ecosystem"] for u in config["updates"]}
    assert "github-actions" in ecosystems, ecosystems
