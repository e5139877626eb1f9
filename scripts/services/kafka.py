"""A real Apache Kafka broker (KRaft) from Kafka's jars on Maven Central: one node by
default (a cluster of three on loopback: ``kafka_cluster``). The command line that
keeps one in the background is ``local_kafka`` (``scripts/local-kafka``).

``start_broker(..., sasl=SaslUser(...))`` adds a SASL_SSL listener (SCRAM-SHA-512 over
TLS, a CA made for it) beside the PLAINTEXT one the broker uses for itself.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from scripts.services.common import (
    REPO_ROOT,
    Service,
    ServiceError,
    cache_dir,
    ensure_port_free,
    free_port,
    require_tool,
    spawn,
    stop_process,
    wait_until,
)
from scripts.services.tls import BrokerTls, make_broker_tls

KAFKA_VERSION = os.environ.get("KAFKA_VERSION", "4.4.0")
LOG4J_VERSION = "2.25.5"
POM = Path(__file__).with_name("pom-kafka.xml")
# Where `start` keeps pid, logs and data (LOCAL_KAFKA_STATE_DIR: another folder).
STATE_DIR = Path(os.environ.get("LOCAL_KAFKA_STATE_DIR") or REPO_ROOT / ".local" / "kafka")
START_TIMEOUT = 60.0

# Short names for Kafka's operator tools (all on the broker's classpath).
TOOLS = {
    "consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "topics": "org.apache.kafka.tools.TopicCommand",
    "console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "get-offsets": "org.apache.kafka.tools.GetOffsetShell",
}

LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.stdout.ref = STDOUT
"""


def ensure_jars() -> Path:
    """Resolve the broker and tools jars once per Kafka version; return the folder."""
    libs = cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    require_tool("java", "run the Kafka broker (install a JDK 17+)")
    mvn = require_tool("mvn", "fetch Kafka's jars from Maven Central (install Maven)")
    staging = libs.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        mvn, "-q", "-B", "-f", str(POM),
        f"-Dkafka.version={KAFKA_VERSION}", f"-Dlog4j.version={LOG4J_VERSION}",
        "dependency:copy-dependencies", "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise ServiceError(
            f"Maven could not fetch Kafka {KAFKA_VERSION} jars:\n{result.stdout}{result.stderr}"
        )
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    marker.touch()
    return libs


def java_cmd(main_class: str, *args: str, heap: str = "256m", log_level: str = "WARN") -> list[str]:
    """A java command line with Kafka's classpath and a quiet log4j2 config."""
    java = require_tool("java", "run Kafka (install a JDK 17+)")
    libs = ensure_jars()
    log_conf = libs.parent / f"log4j2-{log_level.lower()}.properties"
    if not log_conf.exists():
        log_conf.write_text(LOG4J2.format(level=log_level))
    return [
        java, f"-Xmx{heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
        f"-Dlog4j2.configurationFile={log_conf}", "-cp", f"{libs}/*", main_class, *args,
    ]  # fmt: skip


def run_tool(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one of Kafka's own command-line tools (short name or class) and capture output."""
    main_class = TOOLS.get(name, name)
    result = subprocess.run(  # noqa: S603
        java_cmd(main_class, *args, log_level="ERROR"), capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        raise ServiceError(f"{name} {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


SASL_MECHANISM = "SCRAM-SHA-512"
JAAS = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


@dataclass(frozen=True)
class SaslUser:
    """A SCRAM-SHA-512 user the SASL_SSL listener accepts (created at format time)."""

    username: str
    password: str


@dataclass(frozen=True)
class SaslListener:
    """Where a broker's SASL_SSL listener is and what a client needs to use it."""

    port: int
    user: SaslUser
    tls: BrokerTls

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client_conf(self, password: str | None = None) -> dict[str, str]:
        """librdkafka settings for this listener (``password`` overrides the user's)."""
        return {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": SASL_MECHANISM,
            "sasl.username": self.user.username,
            "sasl.password": self.user.password if password is None else password,
            "ssl.ca.location": str(self.tls.ca_pem),
        }


@dataclass
class Broker(Service):
    """A running broker started by this module."""

    controller_port: int
    data_dir: Path
    sasl: SaslListener | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def _sasl_properties(sasl: SaslListener) -> str:
    store = sasl.tls
    return f"""\
sasl.enabled.mechanisms={SASL_MECHANISM}
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={JAAS}
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location={store.keystore}
listener.name.sasl_ssl.ssl.keystore.password={store.password}
listener.name.sasl_ssl.ssl.key.password={store.password}
"""


@dataclass(frozen=True)
class Quorum:
    """Who a node is among the KRaft voters, and how many copies each topic keeps."""

    node_id: int = 1
    voters: str = ""  # "1@127.0.0.1:C1,..."; empty: this node alone
    replicas: int = 1  # replication factor of every topic, internal ones included
    min_isr: int = 1


def server_properties(
    port: int, controller_port: int, data_dir: Path, partitions: int,
    sasl: SaslListener | None = None, quorum: Quorum = Quorum(),
) -> str:  # fmt: skip
    voters = quorum.voters or f"{quorum.node_id}@127.0.0.1:{controller_port}"
    rf, isr = quorum.replicas, quorum.min_isr
    listeners = f"PLAINTEXT://127.0.0.1:{port}"
    protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    if sasl is not None:
        listeners += f",SASL_SSL://127.0.0.1:{sasl.port}"
        protocols += ",SASL_SSL:SASL_SSL"
    extra = "" if sasl is None else _sasl_properties(sasl)
    return f"""\
process.roles=broker,controller
node.id={quorum.node_id}
listeners={listeners},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners={listeners}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map={protocols}
controller.quorum.voters={voters}
log.dirs={data_dir / "log"}
num.partitions={partitions}
default.replication.factor={rf}
min.insync.replicas={isr}
unclean.leader.election.enable=false
offsets.topic.replication.factor={rf}
offsets.topic.num.partitions=4
transaction.state.log.replication.factor={rf}
transaction.state.log.min.isr={isr}
share.coordinator.state.topic.replication.factor={rf}
share.coordinator.state.topic.min.isr={isr}
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.segment.bytes=67108864
{extra}"""


def _metadata_ready(conf: dict[str, str]) -> bool:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**conf, "log_level": 0})
    try:
        admin.list_topics(timeout=1.0)
    except Exception:  # noqa: BLE001 - any failure just means "not ready yet"
        return False
    return True


def require_python_deps() -> None:
    """The readiness check needs confluent-kafka: say so before anything is launched."""
    if importlib.util.find_spec("confluent_kafka") is None:
        raise ServiceError(
            f"confluent_kafka is not importable by {sys.executable} (the broker's readiness "
            "check uses it); run scripts/setup, then start again"
        )


def new_cluster_id() -> str:
    """A KRaft cluster id (what StorageTool random-uuid prints), without starting a JVM."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka's own Uuid.randomUuid() avoids these too
            return text


def start_broker(
    data_dir: Path, port: int | None = None, partitions: int = 3, heap: str = "512m",
    sasl: SaslUser | None = None,
) -> Broker:  # fmt: skip
    """Format storage in ``data_dir`` and start a broker; return once it serves metadata.

    With ``sasl``, a SASL_SSL listener on another free port accepts that SCRAM user over
    TLS (``Broker.sasl``); readiness is then checked through it.
    """
    require_python_deps()
    if port is not None:
        ensure_port_free(port, "Kafka broker")
    port = port or free_port()
    controller_port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    listener = None
    format_args: list[str] = []
    if sasl is not None:
        listener = SaslListener(free_port(), sasl, make_broker_tls(data_dir / "tls"))
        scram = f"{SASL_MECHANISM}=[name={sasl.username},password={sasl.password}]"
        format_args = ["--add-scram", scram]
    props = data_dir / "server.properties"
    props.write_text(server_properties(port, controller_port, data_dir, partitions, listener))
    run_tool("kafka.tools.StorageTool", "format", "-t", new_cluster_id(), "-c", str(props),
             "--ignore-formatted", *format_args)  # fmt: skip
    broker = Broker(spawn_broker(props, heap), port, data_dir / "server.log", controller_port,
                    data_dir, listener)  # fmt: skip
    return wait_ready(broker)


def resume_broker(data_dir: Path, heap: str = "512m", *, wait: bool = True) -> Broker:
    """Start the broker of an existing ``data_dir`` again: same ports, same data.

    ``wait=False`` returns once the process runs; ``wait_ready`` waits for it later."""
    require_python_deps()
    props = data_dir / "server.properties"
    if not props.exists():
        raise ServiceError(f"no broker was started in {data_dir}; use start")
    port, controller_port = _ports(props)
    ensure_port_free(port, "Kafka broker")
    ensure_port_free(controller_port, "Kafka controller")
    broker = Broker(spawn_broker(props, heap), port, data_dir / "server.log", controller_port,
                    data_dir)  # fmt: skip
    return wait_ready(broker) if wait else broker


def _ports(props: Path) -> tuple[int, int]:
    """The PLAINTEXT and CONTROLLER ports a ``server.properties`` listens on."""
    settings = dict(line.split("=", 1) for line in props.read_text().splitlines() if "=" in line)
    ports = {
        name: int(address.rsplit(":", 1)[1])
        for name, address in (item.split("://") for item in settings["listeners"].split(","))
    }
    return ports["PLAINTEXT"], ports["CONTROLLER"]


def spawn_broker(props: Path, heap: str) -> subprocess.Popen[bytes]:
    return spawn(java_cmd("kafka.Kafka", str(props), heap=heap), props.with_name("server.log"))


def wait_ready(broker: Broker) -> Broker:
    """Wait until ``broker`` serves metadata; whatever goes wrong, stop what was started."""
    conf = {"bootstrap.servers": broker.bootstrap}
    if broker.sasl is not None:
        conf = broker.sasl.client_conf()
    try:
        wait_until(lambda: _metadata_ready(conf), broker.proc, START_TIMEOUT, "Kafka broker",
                   broker.log)  # fmt: skip
    except BaseException:
        stop_process(broker.pid)
        raise
    return broker
