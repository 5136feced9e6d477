"""Each topology described once: which nodes run, on which ports, with which directories.

`single` is the stack `make services` runs: one Kafka node, broker and controller at once, on
9092 (controller 9093), its data in var/kafka. `cluster` is the replicated stack on loopback:
three Kafka nodes, each broker and controller, a controller quorum of three, on 19092-19094
(controllers 19192-19194), everything under var/cluster/. Both share the broker's jars
(var/kafka/lib, collected once by Maven).

Every node's configuration (stack/kafka_properties.py) and the settings the application needs
(`application_env`) are derived from these values; nothing here is written twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
TOPOLOGIES = ("single", "cluster")

SINGLE_KAFKA_PORT = 9092
CLUSTER_KAFKA_PORTS = (19092, 19093, 19094)
CLUSTER_CONTROLLER_PORT_OFFSET = 100  # 19192-19194

# Two cores for everything: small heaps, and three JVMs that do not each run a pool of GC
# threads sized for the machine.
SINGLE_HEAP = ("-Xms512m", "-Xmx512m")
CLUSTER_HEAP = ("-Xms256m", "-Xmx256m")
JVM_OPTIONS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
CLUSTER_JVM_OPTIONS = ("-XX:ParallelGCThreads=1", "-XX:ConcGCThreads=1")


def majority(replicas: int) -> int:
    """How many replicas must hold a write before it is acknowledged (`min.insync.replicas`):
    a majority, so that with 3 replicas one node may be lost and every acknowledged write is
    still on another. 1 for 1, 2 for 2 and 3, 3 for 5."""
    if replicas < 1:
        raise ValueError(f"a replication factor is at least 1, not {replicas}")
    return replicas // 2 + 1


@dataclass(frozen=True, slots=True)
class KafkaNode:
    """One Kafka process: broker and controller at once (KRaft combined mode)."""

    node_id: int
    name: str  # what status prints: `kafka` alone, `kafka-1`… in a cluster
    port: int  # PLAINTEXT: clients and replication between brokers
    controller_port: int  # CONTROLLER: the KRaft quorum
    home: Path  # server.properties and data/
    log_file: Path  # the JVM's stdout and stderr (warnings and errors)
    log_dir: Path  # server.log (everything at INFO)
    pid_file: Path

    @property
    def data_dir(self) -> Path:
        """`log.dirs`: the partitions and the metadata log."""
        return self.home / "data"

    @property
    def properties_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def controller_address(self) -> str:
        return f"{HOST}:{self.controller_port}"


@dataclass(frozen=True, slots=True)
class KafkaTopology:
    name: str
    nodes: tuple[KafkaNode, ...]
    lib_dir: Path  # the broker's classpath, shared by every topology
    cluster_id_file: Path  # one id for every node's storage, made once
    heap: tuple[str, ...]
    jvm_options: tuple[str, ...]
    network_threads: int
    io_threads: int
    # A broker silent this long is fenced and its partitions led elsewhere: the failover's length.
    broker_session_timeout_ms: int

    def __post_init__(self) -> None:
        ids = [node.node_id for node in self.nodes]
        ports = [p for node in self.nodes for p in (node.port, node.controller_port)]
        if not ids or len(set(ids)) != len(ids) or len(set(ports)) != len(ports):
            raise ValueError(f"{self.name}: node ids and ports must be distinct: {self.nodes}")

    @property
    def replication_factor(self) -> int:
        """Every topic's, the internal ones' too: one copy on each node."""
        return len(self.nodes)

    @property
    def min_insync_replicas(self) -> int:
        return majority(self.replication_factor)

    @property
    def standalone(self) -> bool:
        """One node is its own quorum (formatted `--standalone`); several share a static one."""
        return len(self.nodes) == 1

    @property
    def bootstrap_servers(self) -> str:
        """Every node, so that a client starts whichever of them is up."""
        return ",".join(node.address for node in self.nodes)

    @property
    def quorum_voters(self) -> str:
        """`controller.quorum.voters`: id@host:port of every controller."""
        return ",".join(f"{node.node_id}@{node.controller_address}" for node in self.nodes)

    def node(self, wanted: str | int) -> KafkaNode:
        """A node by its id (`2`) or name (`kafka-2`)."""
        for node in self.nodes:
            if str(wanted) in (str(node.node_id), node.name):
                return node
        known = ", ".join(f"{node.node_id} ({node.name})" for node in self.nodes)
        raise KeyError(f"{self.name} has no Kafka node {wanted!r}; it has {known}")


@dataclass(frozen=True, slots=True)
class Topology:
    """Every engine of one topology. (Kafka for now; RabbitMQ, Redis and PostgreSQL follow.)"""

    name: str
    root: Path  # the checkout: every directory lies under its var/
    kafka: KafkaTopology = field(repr=False)


def single(
    root: Path, kafka_port: int = SINGLE_KAFKA_PORT, heap: tuple[str, ...] = SINGLE_HEAP
) -> Topology:
    """What `make services` runs: one Kafka node, with the paths scripts/services.sh has always
    used (var/kafka, var/log/kafka.log, var/run/kafka.pid), so a broker it started is known."""
    var = root / "var"
    node = KafkaNode(
        node_id=1,
        name="kafka",
        port=kafka_port,
        controller_port=kafka_port + 1,
        home=var / "kafka",
        log_file=var / "log" / "kafka.log",
        log_dir=var / "log" / "kafka",
        pid_file=var / "run" / "kafka.pid",
    )
    kafka = KafkaTopology(
        name="single",
        nodes=(node,),
        lib_dir=var / "kafka" / "lib",
        cluster_id_file=var / "kafka" / "cluster.id",
        heap=heap,
        jvm_options=JVM_OPTIONS,
        network_threads=2,
        io_threads=4,
        broker_session_timeout_ms=9000,  # Kafka's default; alone, there is no one to fail over to
    )
    return Topology("single", root, kafka)


def cluster(root: Path, heap: tuple[str, ...] = CLUSTER_HEAP) -> Topology:
    """Three Kafka nodes on loopback, each broker and controller, everything under var/cluster/."""
    var = root / "var" / "cluster"
    nodes = tuple(
        KafkaNode(
            node_id=n,
            name=f"kafka-{n}",
            port=port,
            controller_port=port + CLUSTER_CONTROLLER_PORT_OFFSET,
            home=var / "kafka" / str(n),
            log_file=var / "log" / f"kafka-{n}.log",
            log_dir=var / "log" / f"kafka-{n}",
            pid_file=var / "run" / f"kafka-{n}.pid",
        )
        for n, port in enumerate(CLUSTER_KAFKA_PORTS, start=1)
    )
    kafka = KafkaTopology(
        name="cluster",
        nodes=nodes,
        lib_dir=root / "var" / "kafka" / "lib",
        cluster_id_file=var / "kafka" / "cluster.id",
        heap=heap,
        jvm_options=JVM_OPTIONS + CLUSTER_JVM_OPTIONS,
        network_threads=2,
        io_threads=2,
        # Leadership moves within ~6 s of a node's death, inside the relay producer's 10 s
        # delivery timeout (arena/messaging/kafka.py); at Kafka's 9 s a send in flight at the
        # death could time out first and be sent again. Heartbeats go every 2 s (the default).
        broker_session_timeout_ms=6000,
    )
    return Topology("cluster", root, kafka)


def topology(
    name: str,
    root: Path,
    *,
    kafka_port: int = SINGLE_KAFKA_PORT,
    heap: tuple[str, ...] | None = None,
) -> Topology:
    """The topology called `name`; `kafka_port` moves the single node (KAFKA_PORT), `heap`
    replaces the JVM heap options of every node (KAFKA_HEAP)."""
    if name == "single":
        return single(root, kafka_port, heap or SINGLE_HEAP)
    if name == "cluster":
        return cluster(root, heap or CLUSTER_HEAP)
    raise KeyError(f"no topology {name!r}; there are {', '.join(TOPOLOGIES)}")


def application_env(stack: Topology) -> dict[str, str]:
    """The application's settings (arena/settings.py's variables) that reach this topology."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
        "KAFKA_REPLICATION_FACTOR": str(stack.kafka.replication_factor),
    }
