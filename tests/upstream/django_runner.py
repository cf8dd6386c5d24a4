"""Runs Django's own test runner (``tests/runtests.py`` of the released sdist) on the
given labels, with ``ferrosession.django.signed_cookies``'s ``SessionStore`` standing in
for ``django.contrib.sessions.backends.signed_cookies``'s when ``--swap`` comes first.

    cd target/upstream/django-X/tests && python django_runner.py [--swap] LABEL... [OPTIONS]

The swap happens before Django's tests are imported, so ``from
django.contrib.sessions.backends.signed_cookies import SessionStore`` in them (and every
``SESSION_ENGINE`` naming that module) gets ferrosession's engine.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--swap"]:
        args = args[1:]
        import django.contrib.sessions.backends.signed_cookies as upstream

        from ferrosession.django.signed_cookies import SessionStore

        upstream.SessionStore = SessionStore
        print(f"ferrosession drop-in: {SessionStore.__module__}.SessionStore", flush=True)
    runtests = Path.cwd() / "runtests.py"
    sys.argv = [str(runtests), *args]
    sys.path.insert(0, str(Path.cwd()))
    runpy.run_path(str(runtests), run_name="__main__")
