"""Starlette's, Flask's and Django's own session tests, from their released sdists,
against the drop-ins (``run_upstream.py`` has the details; it also runs them from the command line,
with ``--baseline`` beside the originals).

The sdists are fetched once into ``target/upstream/`` (pip, from PyPI); without them and
without a network the test is skipped, saying so. The suites take about 10 s.
"""

from __future__ import annotations

import pytest
import run_upstream as upstream


@pytest.mark.slow
@pytest.mark.parametrize("suite", sorted(upstream.SUITES))
def test_upstream_session_tests_pass_with_the_drop_ins(suite: str) -> None:
    pytest.importorskip(upstream.SUITES[suite].dist)
    try:
        root = upstream.prepare(suite)
    except upstream.FetchError as exc:
        pytest.skip(f"{suite}'s sdist is not cached and cannot be fetched: {exc}")
    outcomes = upstream.run_suite(suite, root, swap=True)
    assert len(outcomes) >= 10, outcomes
    failed = [o for o in outcomes if not upstream.acceptable(suite, o)]
    assert not failed, upstream.markdown({suite: {"drop-in": outcomes}})
