"""pytest plugin loaded for every upstream run, with or without the drop-ins: it only
bridges the upstream test suites' assumptions about the installed pytest.

Flask 3.1's ``tests/conftest.py`` uses ``_pytest.monkeypatch.notset``, which pytest 9
renamed ``NOTSET``.
"""

from __future__ import annotations

import _pytest.monkeypatch

if not hasattr(_pytest.monkeypatch, "notset") and hasattr(_pytest.monkeypatch, "NOTSET"):
    _pytest.monkeypatch.notset = _pytest.monkeypatch.NOTSET  # type: ignore[attr-defined]
