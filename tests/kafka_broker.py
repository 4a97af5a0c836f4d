"""A real Apache Kafka broker for tests: KRaft mode, one node, on the local JVM.

The broker's jars come from Maven Central through ``mvn dependency:copy-dependencies``
on a small generated pom (``org.apache.kafka:kafka_2.13``), once, into
``~/.cache/modelmonitor/kafka-<version>/libs`` (``$MODELMONITOR_CACHE`` moves the
root); later sessions find them there (a ``.complete`` stamp marks a finished fetch).
Kafka 4.x needs Java 17 or newer (``openjdk-17-jre-headless`` on Debian bookworm, in
tests/cluster/system-deps.sh, with ``maven``).

    with running_kafka("demo") as kafka:
        kafka.bootstrap  # "127.0.0.1:<port>"

With ``secure=`` a :class:`SecureListener` (a :class:`~tests.tls_certs.TestCA`'s server
certificate and the SCRAM and PLAIN users) the broker also listens with SASL_SSL on a
third port (``kafka.secure_bootstrap``): PEM key and trust stores (Kafka reads PEM
itself, no JKS), SCRAM credentials written into the KRaft metadata by ``kafka-storage
format --add-scram`` (no running broker needed), PLAIN users in the listener's JAAS
line. The PLAINTEXT listener stays for the test's own producer and the inter-broker
link.

Each :class:`KafkaBroker` is one process acting as broker and controller on free
loopback ports, with its log directory under ``<repo>/.state/kafka/<owner pid>-<name>/``
(formatted with ``kafka.tools.StorageTool`` before the first start). The child gets
SIGKILL if the test process dies, and :func:`reap_orphans` removes what killed sessions
left, as for the harness' Prometheus.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests import processes
from tests.ports import free_port
from tests.tls_certs import TestCA

REPO_ROOT = Path(__file__).resolve().parents[1]
STATE_ROOT = REPO_ROOT / ".state" / "kafka"
PID_FILE = "kafka.pid"
KAFKA_VERSION = os.environ.get("MODELMONITOR_KAFKA_VERSION", "4.1.1")
# Fast JVM start for a short-lived test broker: C1 only, the serial collector, small heap.
JVM_OPTS = [
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xshare:auto",
    "-Djava.awt.headless=true",
    "-Dlog4j.configuration=file:/dev/null",
]
_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.modelmonitor.tests</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""


@dataclass(frozen=True)
class SecureListener:
    """What a SASL_SSL listener needs: the CA whose server certificate it presents (and
    whose client certificates it accepts, ``client_auth`` "required" for mTLS), and its
    users (name -> password) for SCRAM-SHA-256/512 and for PLAIN."""

    ca: TestCA
    scram_users: Mapping[str, str] = field(default_factory=dict)
    plain_users: Mapping[str, str] = field(default_factory=dict)
    client_auth: str = "none"  # none | requested | required


class KafkaHarnessError(RuntimeError):
    """The broker could not be fetched, formatted or started; carries its log tail."""


def cache_dir(version: str = KAFKA_VERSION) -> Path:
    root = os.environ.get("MODELMONITOR_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modelmonitor"
    )
    return Path(root) / f"kafka-{version}"


def ensure_jars(version: str = KAFKA_VERSION) -> Path:
    """The directory of the broker's jars, fetched with Maven once (about 40 MiB)."""
    home = cache_dir(version)
    libs = home / "libs"
    if (home / ".complete").is_file():
        return libs
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise KafkaHarnessError(
            "the Kafka broker needs java (17+) and mvn: bash tests/cluster/system-deps.sh"
        )
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(_POM.format(version=version))
    shutil.rmtree(libs, ignore_errors=True)
    proc = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(home / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
        raise KafkaHarnessError(f"mvn could not fetch Kafka {version}:\n{proc.stdout[-3000:]}")
    (home / ".complete").write_text(version + "\n")
    return libs


def reap_orphans(root: Path = STATE_ROOT) -> None:
    """Stop brokers (and remove state) of test processes that are gone."""
    processes.reap_orphans(root, PID_FILE)


class KafkaBroker:
    """One single-node KRaft Kafka (broker + controller) on loopback."""

    def __init__(self, name: str, secure: SecureListener | None = None) -> None:
        self.name = name
        self.secure = secure
        self.state_dir = processes.state_dir(STATE_ROOT, name)
        ports: list[int] = []
        while len(ports) < 3:
            port = free_port("127.0.0.1")
            if port not in ports:
                ports.append(port)
        self.port, self.controller_port, self.secure_port = ports
        self._process: subprocess.Popen[bytes] | None = None
        self.start_seconds: float | None = None  # wall time of the last start (format + boot)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def secure_bootstrap(self) -> str:
        """The SASL_SSL listener's address (only with ``secure=``)."""
        if self.secure is None:
            raise KafkaHarnessError("this broker has no SASL_SSL listener")
        return f"127.0.0.1:{self.secure_port}"

    def _listeners(self) -> list[str]:
        plain = f"PLAINTEXT://127.0.0.1:{self.port}"
        controller = f"CONTROLLER://127.0.0.1:{self.controller_port}"
        if self.secure is None:
            return [
                f"listeners={plain},{controller}",
                f"advertised.listeners={plain}",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            ]
        secure = self.secure
        stores = self.state_dir / "tls"
        stores.mkdir(parents=True, exist_ok=True)
        keystore = stores / "server.pem"  # the key first, then the chain: Kafka's PEM layout
        keystore.write_bytes(secure.ca.server.key + secure.ca.server.cert)
        truststore = stores / "ca.pem"
        truststore.write_bytes(secure.ca.ca.cert)
        for path in (keystore, truststore):
            path.chmod(0o600)
        prefix = "listener.name.sasl_ssl"
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        plain_users = "".join(f' user_{u}="{p}"' for u, p in secure.plain_users.items())
        plain_jaas = (
            f"org.apache.kafka.common.security.plain.PlainLoginModule required{plain_users};"
        )
        return [
            f"listeners={plain},{controller},SASL_SSL://127.0.0.1:{self.secure_port}",
            f"advertised.listeners={plain},SASL_SSL://127.0.0.1:{self.secure_port}",
            "listener.security.protocol.map="
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
            f"{prefix}.scram-sha-256.sasl.jaas.config={scram}",
            f"{prefix}.scram-sha-512.sasl.jaas.config={scram}",
            f"{prefix}.plain.sasl.jaas.config={plain_jaas}",
            f"{prefix}.ssl.keystore.type=PEM",
            f"{prefix}.ssl.keystore.location={keystore}",
            f"{prefix}.ssl.truststore.type=PEM",
            f"{prefix}.ssl.truststore.location={truststore}",
            f"{prefix}.ssl.client.auth={secure.client_auth}",
        ]

    def _scram_args(self) -> list[str]:
        """``--add-scram`` for each SCRAM user, both hash sizes (format time, KRaft)."""
        if self.secure is None:
            return []
        return [
            f"--add-scram={mechanism}=[name={user},password={password}]"
            for user, password in self.secure.scram_users.items()
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
        ]

    def _properties(self) -> str:
        data = self.state_dir / "data"
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                *self._listeners(),
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={data}",
                "num.partitions=1",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "",
            ]
        )

    def _java(self, libs: Path, *args: str) -> list[str]:
        return ["java", *JVM_OPTS, "-cp", f"{libs}/*", *args]

    def start(self, timeout: float = 90.0) -> KafkaBroker:
        libs = ensure_jars()
        started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        props = self.state_dir / "server.properties"
        props.write_text(self._properties())
        if not (self.state_dir / "data" / "meta.properties").is_file():
            cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
            fmt = subprocess.run(
                self._java(
                    libs,
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={cluster_id}",  # it may start with '-'
                    f"--config={props}",
                    *self._scram_args(),
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                check=False,
            )
            if fmt.returncode != 0:
                raise KafkaHarnessError(f"kafka-storage format failed:\n{fmt.stdout[-3000:]}")
        log = (self.state_dir / "kafka.log").open("ab")
        with log:
            self._process = subprocess.Popen(
                self._java(libs, "kafka.Kafka", str(props)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=processes.die_with_parent,
            )
        (self.state_dir / PID_FILE).write_text(str(self._process.pid))
        self._wait_ready(timeout)
        self.start_seconds = time.monotonic() - started
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise KafkaHarnessError(f"the broker exited:\n{self.log_tail()}")
            if all(_listening(port) for port in self._ports()):
                return
            time.sleep(0.2)
        raise KafkaHarnessError(
            f"the broker did not listen within {timeout:g} s:\n{self.log_tail()}"
        )

    def _ports(self) -> list[int]:
        return [self.port] if self.secure is None else [self.port, self.secure_port]

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = (self.state_dir / "kafka.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=10)
        self._process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def running_kafka(name: str, secure: SecureListener | None = None) -> Iterator[KafkaBroker]:
    reap_orphans()
    broker = KafkaBroker(name, secure).start()
    try:
        yield broker
    finally:
        broker.destroy()


if __name__ == "__main__":
    # `python -m tests.kafka_broker fetch`: the jars, before a test session needs them
    # (make deps), so a bare machine's first fetch is not inside a test's timeout.
    import sys

    if sys.argv[1:] != ["fetch"]:
        sys.exit("usage: python -m tests.kafka_broker fetch")
    print(ensure_jars())
