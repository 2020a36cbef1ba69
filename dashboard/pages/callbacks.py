"""How a page module declares its callbacks, and how ``create_dash`` puts them on an app.

A page module holds its layout and its callbacks (docs/architecture.md), but it does
not use ``@dash.callback``: Dash keeps those in a process-global list that the
first app to serve a request takes and empties, so a second app in the same
process (every test builds one) would have none.  Instead each module fills a
``PageCallbacks`` at import time (immutable configuration, no user state) and
``create_dash`` registers it on the app it builds, wrapping every server
callback in the role check.  The decorated function is returned unchanged, so
tests call it as a plain function.

Every server callback names the roles that may run it; ``changes_state`` marks
the ones that change anything (alert actions).  The same roles are enforced
before Dash parses the request (``dashboard.auth_views``), and again inside the
wrapper, so a crafted POST to ``/_dash-update-component`` cannot reach a
callback its role may not use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServerCallback:
    fn: Callable
    args: tuple
    roles: tuple[str, ...]
    changes_state: bool
    kwargs: dict


@dataclass(frozen=True)
class ClientCallback:
    namespace: str
    function: str
    args: tuple
    kwargs: dict


@dataclass
class PageCallbacks:
    """The callbacks of one page; ``roles`` is the default for its server callbacks."""

    page: str
    roles: tuple[str, ...]
    server: list[ServerCallback] = field(default_factory=list)
    client: list[ClientCallback] = field(default_factory=list)

    def callback(self, *args, roles: tuple[str, ...] | None = None, changes_state: bool = False, **kwargs):
        def deco(fn: Callable) -> Callable:
            self.server.append(ServerCallback(fn, args, tuple(roles or self.roles), changes_state, kwargs))
            return fn

        return deco

    def clientside(self, function: str, *args, namespace: str = "anjian", **kwargs) -> None:
        """A callback run in the browser by ``window.dash_clientside.<namespace>.<function>``."""
        self.client.append(ClientCallback(namespace, function, args, kwargs))
