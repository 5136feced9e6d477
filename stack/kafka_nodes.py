"""Start, stop, kill and report a topology's Kafka nodes: the genuine Apache Kafka broker (KRaft)
from Maven Central's jars, one JVM per node, on loopback.

What `scripts/services.sh` did in bash, for any number of nodes: Java 17+ (apt-get when missing),
the jars collected once by Maven (infra/kafka/pom.xml) into var/kafka/lib, shared by every
topology, each node's server.properties written at each start (stack/kafka_properties.py), its
storage formatted once with the topology's one cluster id, the JVM started in a session of its
own (it outlives the shell that ran `up`) with its pid in a pid file, and ready when it answers a
real Metadata request (stack/kafka_ready.py). Standard library only.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from stack import host
from stack.kafka_properties import render
from stack.kafka_ready import Metadata, NotReady, probe
from stack.topology import HOST, KafkaNode, KafkaTopology, Topology

SERVICE = "kafka"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
KILL_TIMEOUT_SECONDS = 10.0
JAVA_PACKAGE = "openjdk-17-jre-headless"
CLUSTER_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")


def _infra(stack: Topology) -> Path:
    return stack.root / "infra" / "kafka"


def _setup_log(stack: Topology, name: str) -> Path:
    return stack.root / "var" / "log" / name


# --- installing --------------------------------------------------------------------------------


def java_major() -> int:
    """The major version of the `java` on PATH; 0 when there is none."""
    if shutil.which("java") is None:
        return 0
    done = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    found = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if not found:
        return 0
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def ensure_java(stack: Topology) -> None:
    if java_major() < 17:
        host.apt_install(_setup_log(stack, "apt.log"), JAVA_PACKAGE)
        if java_major() < 17:
            raise host.Failure(SERVICE, f"Java 17+ is required (java on PATH is {java_major()})")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Only one process at a time past here (two `up`s never start two brokers, nor collect the
    jars at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_libs(stack: Topology) -> None:
    """The broker's classpath, collected once by Maven; a stamp holding the pom's hash marks it
    complete (a changed pom collects it again)."""
    pom = _infra(stack) / "pom.xml"
    lib = stack.kafka.lib_dir
    want = hashlib.sha256(pom.read_bytes()).hexdigest()
    stamp = lib / ".stamp"
    with _locked(lib.parent / "lib.lock"):
        if stamp.is_file() and stamp.read_text().strip() == want:
            return
        maven_log = _setup_log(stack, "maven.log")
        if shutil.which("mvn") is None:
            host.apt_install(_setup_log(stack, "apt.log"), "maven")
        host.say(
            SERVICE, f"collecting the broker jars with Maven into {lib} (output in {maven_log})"
        )
        shutil.rmtree(lib, ignore_errors=True)
        maven_log.parent.mkdir(parents=True, exist_ok=True)
        command = ["mvn", "-B", "-q", "-Dstyle.color=never", "-f", str(pom), "package"]
        with maven_log.open("wb") as out:
            done = subprocess.run(
                [*command, f"-Dkafka.lib.dir={lib}"],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0:
            host.show_tail([maven_log])
            raise host.Failure(SERVICE, "Maven could not collect the Kafka jars")
        stamp.write_text(want + "\n")


# --- one node's process ------------------------------------------------------------------------


def _java(stack: Topology, node: KafkaNode, *arguments: str) -> list[str]:
    kafka = stack.kafka
    return [
        "java",
        *kafka.heap,
        *kafka.jvm_options,
        "-cp",
        f"{kafka.lib_dir}/*",
        f"-Dlog4j2.configurationFile={_infra(stack) / 'log4j2.yaml'}",
        f"-Dkafka.logs.dir={node.log_dir}",
        *arguments,
    ]


def _broker_needle(node: KafkaNode) -> str:
    """What only this node's broker JVM has in its command line."""
    return f"kafka.Kafka {node.properties_file}"


def node_pid(node: KafkaNode) -> int | None:
    return host.pid_matching(node.pid_file, _broker_needle(node))


def answers(node: KafkaNode) -> Metadata | None:
    try:
        return probe(HOST, node.port)
    except NotReady:
        return None


def _answering(node: KafkaNode) -> bool:
    return answers(node) is not None


def _running(node: KafkaNode) -> bool:
    return node_pid(node) is not None


def cluster_id(kafka: KafkaTopology) -> str:
    """The id every node's storage is formatted with: made once, kept beside the nodes. Should
    the file be lost, a formatted node's own id is kept rather than a new one made."""
    path = kafka.cluster_id_file
    if path.is_file():
        found = path.read_text().strip()
    else:
        formatted = [node.data_dir / "meta.properties" for node in kafka.nodes]
        found = next(
            (
                line.split("=", 1)[1].strip()
                for meta in formatted
                if meta.is_file()
                for line in meta.read_text().splitlines()
                if line.startswith("cluster.id=")
            ),
            "",
        )
        while not found or found.startswith("-"):  # what Kafka's Uuid.randomUuid() makes
            found = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(found + "\n")
    if not CLUSTER_ID.match(found):
        raise host.Failure(SERVICE, f"bad cluster id {found!r} in {path}")
    return found


def _format(stack: Topology, nodes: Sequence[KafkaNode]) -> None:
    """Format each node's storage that is not yet, all at once (a JVM each)."""
    kafka = stack.kafka
    unformatted = [node for node in nodes if not (node.data_dir / "meta.properties").is_file()]
    if not unformatted:
        return
    cid = cluster_id(kafka)
    # One node is its own quorum; the cluster's nodes know theirs from controller.quorum.voters.
    standalone = ["--standalone"] if kafka.standalone else []
    started = []
    for node in unformatted:
        host.say(SERVICE, f"formatting {node.name}'s storage (cluster id {cid})")
        arguments = ["format", "-t", cid, "-c", str(node.properties_file), *standalone, "-g"]
        with node.log_file.open("ab") as out:
            command = _java(stack, node, "kafka.tools.StorageTool", *arguments)
            started.append((node, subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)))
    for node, process in started:
        if process.wait() != 0:
            host.show_tail([node.log_file])
            raise host.Failure(SERVICE, f"formatting {node.name}'s storage failed")


def _spawn(stack: Topology, node: KafkaNode) -> int:
    with node.log_file.open("ab") as out:
        process = subprocess.Popen(
            _java(stack, node, "kafka.Kafka", str(node.properties_file)),
            cwd=node.home,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # setsid: the node outlives the shell that ran `up`
        )
    node.pid_file.write_text(f"{process.pid}\n")
    return process.pid


# --- the commands ------------------------------------------------------------------------------


def _lock(stack: Topology) -> Path:
    return stack.kafka.nodes[0].pid_file.parent / "kafka.lock"


def _logs(node: KafkaNode) -> list[Path]:
    return [node.log_dir / "server.log", node.log_file]


def up(stack: Topology, timeout_seconds: float = START_TIMEOUT_SECONDS) -> None:
    """Every node of the topology up; those already up are left alone. Idempotent."""
    kafka = stack.kafka
    for node in kafka.nodes:
        for directory in (node.home, node.log_dir, node.pid_file.parent):
            directory.mkdir(parents=True, exist_ok=True)
    with _locked(_lock(stack)):
        missing = []
        for node in kafka.nodes:
            pid = node_pid(node)
            if answers(node):
                host.say(SERVICE, f"{node.name} already up on {node.address}")
            elif pid is not None:
                host.say(SERVICE, f"{node.name} (pid {pid}) is starting; waiting for it")
            else:
                taken = [p for p in (node.port, node.controller_port) if host.port_open(p)]
                if taken:
                    raise host.Failure(
                        SERVICE,
                        f"port {taken[0]} ({node.name}) is taken by another program;"
                        + (" choose another KAFKA_PORT" if kafka.standalone else " free it"),
                    )
                missing.append(node)
        if missing:
            ensure_java(stack)
            ensure_libs(stack)
            for node in missing:
                node.properties_file.write_text(render(kafka, node))
            _format(stack, missing)
            for node in missing:
                extra = f", controller {node.controller_port}"
                host.say(SERVICE, f"starting {node.name} on {node.address}{extra}")
                _spawn(stack, node)
        _wait_ready(kafka, timeout_seconds)
    for node in kafka.nodes:
        host.say(SERVICE, f"{node.name} up on {node.address} (pid {node_pid(node) or '-'})")


def _wait_ready(kafka: KafkaTopology, timeout_seconds: float) -> None:
    """Every node answers, and (several nodes) every one of them knows every broker."""
    started = time.monotonic()
    everyone = frozenset(node.node_id for node in kafka.nodes)
    for node in kafka.nodes:
        host.wait_for(
            SERVICE,
            max(1.0, timeout_seconds - (time.monotonic() - started)),
            functools.partial(_answering, node),
            functools.partial(_running, node),
            _logs(node),
        )

    def all_registered() -> bool:
        return all(
            (metadata := answers(node)) is not None and metadata.broker_ids >= everyone
            for node in kafka.nodes
        )

    if len(kafka.nodes) > 1:
        host.wait_for(
            SERVICE,
            max(1.0, timeout_seconds - (time.monotonic() - started)),
            all_registered,
            lambda: all(_running(node) for node in kafka.nodes),
            [path for node in kafka.nodes for path in _logs(node)],
            what="registration of every broker",
        )


def down(stack: Topology, timeout_seconds: float = STOP_TIMEOUT_SECONDS) -> None:
    """Stop every node (SIGTERM, all at once: a clean shutdown; SIGKILL past the timeout)."""
    with _locked(_lock(stack)):
        stopping = []
        for node in stack.kafka.nodes:
            pid = node_pid(node)
            if pid is None:
                if answers(node):
                    host.warn(
                        SERVICE,
                        f"a broker answers on {node.address} but was not started from "
                        f"{stack.root / 'var'}; left alone",
                    )
                host.say(SERVICE, f"{node.name} not running")
                node.pid_file.unlink(missing_ok=True)
                continue
            host.say(
                SERVICE, f"stopping {node.name} pid {pid} (SIGTERM, up to {timeout_seconds:.0f}s)"
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            stopping.append((node, pid))
        deadline = time.monotonic() + timeout_seconds
        for node, pid in stopping:
            if not host.wait_exit(pid, max(0.0, deadline - time.monotonic())):
                host.warn(
                    SERVICE, f"{node.name} still running after {timeout_seconds:.0f}s; SIGKILL"
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                host.wait_exit(pid, KILL_TIMEOUT_SECONDS)
            node.pid_file.unlink(missing_ok=True)
            host.say(SERVICE, f"{node.name} stopped")


def kill(stack: Topology, wanted: str) -> None:
    """SIGKILL one node, as a crashed machine would stop it: nothing flushed, no controlled
    shutdown. `up` starts it again."""
    node = stack.kafka.node(wanted)
    pid = node_pid(node)
    if pid is None:
        raise host.Failure(SERVICE, f"{node.name} is not running")
    os.kill(pid, signal.SIGKILL)
    if not host.wait_exit(pid, KILL_TIMEOUT_SECONDS):
        raise host.Failure(SERVICE, f"{node.name} (pid {pid}) still runs after SIGKILL")
    node.pid_file.unlink(missing_ok=True)
    host.say(SERVICE, f"{node.name} (pid {pid}) killed")


def status_lines(stack: Topology) -> tuple[list[str], bool]:
    """One line per node, as scripts/services.sh status prints each service, and whether every
    node answers."""
    lines, every = [], True
    for node in stack.kafka.nodes:
        state = "up" if answers(node) else "down"
        every = every and state == "up"
        pid = node_pid(node)
        lines.append(f"{node.name:<9} {state:<5} {node.address:<16} pid {pid or '-'}")
    return lines, every
