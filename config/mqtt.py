"""Where the MQTT broker is: ``ANJIAN_MQTT_URL`` parsed once, for every client.

The URL names one broker, ``mqtt://user:pass@host:1883`` (``mqtts://`` for TLS), or
the nodes of one cluster, comma-separated (docs/deploy.md, "A clustered broker"):

    mqtts://anjian:secret@emqx-1:8883,emqx-2:8883,emqx-3:8883

A node written without a scheme takes the first node's scheme, user and password
(one cluster, one set of credentials); a node may also be a full URL of its own.
Clients connect to the first node that answers, and move to the next when theirs
dies (ingest/client.py).  Every process that talks MQTT (ingest, alert engine,
simulator, the web's task publisher and health check) reads the address here.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SCHEMES = ("mqtt", "mqtts", "tcp", "ssl")
TLS_SCHEMES = ("mqtts", "ssl")


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """One broker from one URL (the first node of a list)."""
        return broker_addresses(url)[0]

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


def _one(url: str) -> BrokerAddress:
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"MQTT URL must start with mqtt:// or mqtts://, not {parts.scheme or '(none)'}://")
    try:
        port = parts.port
    except ValueError as e:
        raise ValueError(f"MQTT URL {url!r}: {e}") from None
    tls = parts.scheme in TLS_SCHEMES
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"MQTT URL {url!r} has a path or query; it takes only user, password, host and port")
    return BrokerAddress(
        host=parts.hostname or "127.0.0.1",
        port=port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def broker_addresses(url: str) -> list[BrokerAddress]:
    """Every node of ``url``, in order.  ``ValueError`` names what is wrong."""
    items = [x.strip() for x in (url or "").split(",")]
    if not items or not items[0]:
        raise ValueError("MQTT URL is empty")
    if any(not x for x in items):
        raise ValueError(f"MQTT URL {url!r} has an empty node between commas")
    first = _one(items[0])
    nodes = [first]
    for item in items[1:]:
        if "://" in item:
            nodes.append(_one(item))
            continue
        scheme = "mqtts" if first.tls else "mqtt"
        nodes.append(_one(f"{scheme}://{item}"))
        nodes[-1] = BrokerAddress(nodes[-1].host, nodes[-1].port, first.tls, first.username, first.password)
    if len({(n.host, n.port) for n in nodes}) != len(nodes):
        raise ValueError(f"MQTT URL {url!r} names a node twice")
    if len({n.tls for n in nodes}) != 1:
        raise ValueError(f"MQTT URL {url!r} mixes TLS and plain nodes; one cluster speaks one way")
    return nodes
