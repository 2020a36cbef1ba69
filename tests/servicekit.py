"""Private service processes for fault tests: a Mosquitto or a Redis on a free
port of its own, so a test can stop and start it without disturbing anything
else."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from data.embedded import free_port, mosquitto_conf, wait_listening
from tests.ports import OFFSET_STEP, spare_port, worker_index


class _ServerProcess:
    """A server process on its own port: ``start`` runs ``argv()`` and waits for the port."""

    port: int
    proc: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self):
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening("127.0.0.1", self.port)

    def stop(self):
        """A graceful stop (SIGTERM): a persistent server saves its state."""
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def kill(self):
        """kill -9: only what the server saved before survives."""
        if self.proc:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


class Mosquitto(_ServerProcess):
    """A private, persistent Mosquitto that keeps sessions across restarts, with
    the embedded broker's configuration (data.embedded.mosquitto_conf)."""

    def __init__(self, tmp: Path):
        self.port = spare_port(21883)
        self.dir = tmp / "mosq"
        self.dir.mkdir()
        self.conf = self.dir / "m.conf"
        self.conf.write_text(mosquitto_conf(self.port, self.dir))

    @property
    def url(self):
        return f"mqtt://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        return ["mosquitto", "-c", str(self.conf)]


class RedisServer(_ServerProcess):
    """A private Redis that keeps its data (append-only file) across restarts."""

    def __init__(self, tmp: Path):
        self.port = spare_port(26379)
        self.dir = tmp / "redis"
        self.dir.mkdir()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--save", "", "--appendonly", "yes"]


def make_test_ca(directory: Path, host: str = "localhost") -> dict[str, Path]:
    """A certificate authority made for one test, and a server certificate it signed
    for ``host`` and 127.0.0.1 (openssl, as an operator would make them)."""
    d = directory
    d.mkdir(parents=True, exist_ok=True)
    paths = {k: d / f"{k}.pem" for k in ("ca", "ca_key", "server", "server_key", "other_ca", "other_ca_key")}

    def run(*argv: str) -> None:
        subprocess.run(["openssl", *argv], check=True, capture_output=True)

    for ca, key, cn in (("ca", "ca_key", "Anjian test CA"), ("other_ca", "other_ca_key", "Someone else's CA")):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={cn}",
            "-keyout", str(paths[key]), "-out", str(paths[ca]))
    csr = d / "server.csr"
    ext = d / "server.ext"
    ext.write_text(f"subjectAltName=DNS:{host},IP:127.0.0.1\n")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}", "-keyout", str(paths["server_key"]),
        "-out", str(csr))
    run("x509", "-req", "-in", str(csr), "-CA", str(paths["ca"]), "-CAkey", str(paths["ca_key"]),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(paths["server"]))
    return paths


class SecureMosquitto(Mosquitto):
    """The private Mosquitto with the production edge of docs/deploy.md: TLS only
    (a test CA), no anonymous clients, a password file, and the shipped ACL
    (``acl``, config/mosquitto/anjian.acl).  ``users`` maps username to password.
    Its log (``log``) records every denied publish and subscription."""

    def __init__(self, tmp: Path, acl: Path, users: dict[str, str]):
        super().__init__(tmp)
        self.certs = make_test_ca(tmp / "pki")
        passwd = self.dir / "passwd"
        passwd.touch()
        for user, password in users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True, capture_output=True)
        self.log = self.dir / "mosquitto.log"
        conf = mosquitto_conf(self.port, self.dir, log_file=self.log)
        conf = conf.replace("allow_anonymous true\n", "")
        conf += "\n".join([
            "allow_anonymous false",
            f"password_file {passwd}",
            f"acl_file {acl}",
            f"cafile {self.certs['ca']}",
            f"certfile {self.certs['server']}",
            f"keyfile {self.certs['server_key']}",
            "log_type all",
        ]) + "\n"
        # The listener line is global in Mosquitto 2.0's file: the TLS options after it apply to it.
        self.conf.write_text(conf)

    def url_for(self, user: str, password: str) -> str:
        return f"mqtts://{user}:{password}@localhost:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class NatsCluster:
    """A 3-node cluster of the installed ``nats-server`` with JetStream and MQTT on
    spare ports (the clustered broker of docs/deploy.md; NATS's MQTT speaks 3.1.1
    with QoS 0 and 1, and keeps sessions and their queued messages in JetStream,
    replicated across the nodes).  ``url`` lists the nodes' MQTT endpoints as
    ``ANJIAN_MQTT_URL`` takes them; ``kill(i)`` is a ``kill -9`` of node ``i``."""

    def __init__(self, tmp: Path, n: int = 3):
        self.dir = tmp / "nats"
        self.n = n
        taken: set[int] = set()

        def port(start: int) -> int:
            p = spare_port(start)
            while p in taken:
                p = free_port(p + 1)
            taken.add(p)
            return p

        self.client_ports = [port(24222 + i) for i in range(n)]
        self.route_ports = [port(26222 + i) for i in range(n)]
        self.mqtt_ports = [port(28883 + i) for i in range(n)]
        self.procs: list[subprocess.Popen | None] = [None] * n
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.route_ports)
        self.confs = []
        for i in range(n):
            d = self.dir / f"n{i}"
            d.mkdir(parents=True)
            conf = d / "nats.conf"
            conf.write_text("\n".join([
                f"server_name: n{i}",
                f"listen: 127.0.0.1:{self.client_ports[i]}",
                f'jetstream {{ store_dir: "{d / "js"}" }}',
                f"cluster {{ name: anjian, listen: 127.0.0.1:{self.route_ports[i]}, routes: [{routes}] }}",
                f"mqtt {{ listen: 127.0.0.1:{self.mqtt_ports[i]} }}",
            ]) + "\n")
            self.confs.append(conf)

    @property
    def url(self) -> str:
        return ",".join(f"mqtt://127.0.0.1:{p}" for p in self.mqtt_ports)

    def node_of(self, port: int) -> int:
        return self.mqtt_ports.index(port)

    def start_node(self, i: int) -> None:
        log = open(self.dir / f"n{i}" / "log", "ab")  # noqa: SIM115 - the server holds it
        self.procs[i] = subprocess.Popen(["nats-server", "-c", str(self.confs[i])], stdout=log,
                                         stderr=subprocess.STDOUT)
        wait_listening("127.0.0.1", self.mqtt_ports[i], proc=self.procs[i])

    def start(self) -> None:
        for i in range(self.n):
            self.start_node(i)

    def kill(self, i: int) -> None:
        p = self.procs[i]
        if p is not None:
            p.kill()
            p.wait(10)
            self.procs[i] = None

    def stop(self) -> None:
        for i, p in enumerate(self.procs):
            if p is not None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                self.procs[i] = None


class RedisCluster:
    """A local Redis Cluster of the installed ``redis-server``: ``masters`` masters,
    each with one replica, on spare ports, made with ``redis-cli --cluster create``
    as an operator would (docs/deploy.md).  Each node keeps an append-only file, and
    fails over after ``node_timeout_ms``.  ``url`` names the first node, as
    ``ANJIAN_REDIS_URL`` does with ``ANJIAN_REDIS_CLUSTER=true``; ``kill(port)``
    is a ``kill -9`` of one node."""

    def __init__(self, tmp: Path, masters: int = 3, node_timeout_ms: int = 1000):
        self.dir = tmp / "rcluster"
        self.masters = masters
        self.node_timeout_ms = node_timeout_ms
        self.ports: list[int] = []
        # Below 22768, so that the bus ports (+10000) stay below Linux's ephemeral range
        # (32768 and up): a client's outgoing connection could take one between our
        # check and the node's start ("Failed listening on port ... (cluster)").
        p = 17100 + OFFSET_STEP * worker_index()
        for _ in range(masters * 2):
            # a node also listens on port + 10000 (the cluster bus): both must be free
            p = free_port(p)
            while free_port(p + 10000) != p + 10000:
                p = free_port(p + 1)
            self.ports.append(p)
            p += 1
        self.procs: dict[int, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start_node(self, port: int) -> None:
        d = self.dir / str(port)
        d.mkdir(parents=True, exist_ok=True)
        log = open(d / "log", "ab")  # noqa: SIM115 - the server holds it
        self.procs[port] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d), "--save", "",
             "--appendonly", "yes", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", str(self.node_timeout_ms),
             # A replica's first sync at once, not after diskless sync's default 5 s wait.
             "--repl-diskless-sync-delay", "0"],
            stdout=log, stderr=subprocess.STDOUT)
        wait_listening("127.0.0.1", port, proc=self.procs[port])

    def start(self) -> None:
        for port in self.ports:
            self.start_node(port)
        subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                        "--cluster-replicas", "1", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        self.wait_ok()
        self.wait_replicas_synced()

    def wait_replicas_synced(self, timeout_s: float = 30) -> None:
        """Until every replica has finished its first sync with its master. A master
        killed before that has no replica that may take over ("Disconnected from master
        for longer than allowed"): the cluster kept that slot unserved for good once,
        when a test killed a master 6 s after the cluster was made."""
        deadline = time.monotonic() + timeout_s
        while True:
            infos = {p: self.cli(p, "info", "replication") for p in self.procs}
            waiting = [p for p, s in infos.items() if "role:slave" in s and "master_link_status:up" not in s]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"replicas {waiting} not in sync after {timeout_s} s")
            time.sleep(0.2)

    def cli(self, port: int, *args: str) -> str:
        return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                              timeout=10).stdout

    def wait_ok(self, timeout_s: float = 30) -> None:
        """Until every live node says the cluster is ok (all slots served)."""
        deadline = time.monotonic() + timeout_s
        while True:
            states = [self.cli(p, "cluster", "info") for p in self.procs]
            if all("cluster_state:ok" in s for s in states):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster not ok after {timeout_s} s: {states}")
            time.sleep(0.2)

    def wait_failover(self, old_master: int, key: str, timeout_s: float = 30) -> int:
        """Until a replica has taken ``key``'s slot over from ``old_master`` (killed) and
        the cluster is ok again; returns the new master's port."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                new = self.master_of(key)
            except LookupError:
                new = old_master
            if new != old_master:
                self.wait_ok(max(1.0, deadline - time.monotonic()))
                return new
            if time.monotonic() > deadline:
                raise TimeoutError(f"no replica took over from {old_master} in {timeout_s} s")
            time.sleep(0.2)

    def master_of(self, key: str) -> int:
        """The port of the master that serves ``key``'s slot now."""
        slot = int(self.cli(next(iter(self.procs)), "cluster", "keyslot", key).strip())
        for line in self.cli(next(iter(self.procs)), "cluster", "nodes").splitlines():
            f = line.split()
            if "master" in f[2] and "fail" not in f[2]:
                for rng in f[8:]:
                    lo, _, hi = rng.partition("-")
                    if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                        return int(f[1].split(":")[1].split("@")[0])
        raise LookupError(f"no master serves slot {slot}")

    def kill(self, port: int) -> None:
        p = self.procs.pop(port)
        p.kill()
        p.wait(10)

    def stop(self) -> None:
        for port in list(self.procs):
            p = self.procs.pop(port)
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
