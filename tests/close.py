"""``pytest.approx`` for times and coordinates.

pytest.approx's default tolerance is relative, 1e-6: for an epoch time (1.8e9 s)
that is half an hour either way, and for a longitude (114°) 12 m.  So
``ts == pytest.approx(t0 + 5)`` also holds for ``t0 + 33``, and a test of order
or of "the newer fix wins" cannot fail.  Times are compared to the millisecond
and degrees to 1e-7 (about a centimetre).  ``tests/test_close.py`` finds calls of
pytest.approx on times or coordinates without a tolerance of their own.
"""

from __future__ import annotations

import pytest


def at(t):
    """An epoch time (or times), to the millisecond."""
    return pytest.approx(t, abs=1e-3)


def deg(x):
    """A latitude or longitude (or several), to 1e-7 degrees."""
    return pytest.approx(x, abs=1e-7)
