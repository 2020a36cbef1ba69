"""One thread at a time in ``ast.parse`` on the CPython releases that need it.

CPython 3.11.0-3.11.7 and 3.12.0-3.12.1 kept the recursion depth of the AST
converter (``ast.parse``'s last step) in one counter for the whole interpreter. A
collection during the conversion can hand the GIL to another thread, and if that
thread parses too, the first fails with ``SystemError: AST constructor recursion
depth mismatch`` (python/cpython issue 106905, fixed in 3.11.8 and 3.12.2).

The web process parses in two places at once: werkzeug compiles every URL rule with
``ast.parse`` while the server is built, and Python 3.11's tracebacks parse the
failing line (for their ``^^^`` marks) when a background thread (the ingest's, the
alert engine's in ``python app.py``) logs an exception. The clean-clone CI saw the
server's construction fail so. Debian 12's Python is 3.11.2, and this machine's
3.11.7. Later releases are left alone.
"""

from __future__ import annotations

import ast
import functools
import sys
import threading

AFFECTED = sys.version_info < (3, 11, 8) or (3, 12) <= sys.version_info < (3, 12, 2)
_LOCK = threading.RLock()


def install() -> bool:
    """Serialise ``ast.parse`` where the interpreter needs it; True if it is (idempotent)."""
    if not AFFECTED:
        return False
    if getattr(ast.parse, "__anjian_locked__", False):
        return True
    parse = ast.parse

    @functools.wraps(parse)
    def locked_parse(*args, **kwargs):
        with _LOCK:
            return parse(*args, **kwargs)

    locked_parse.__anjian_locked__ = True
    ast.parse = locked_parse
    return True
