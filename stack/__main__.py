"""`python -m stack kafka up|down|status|kill NODE|describe|env [--topology single|cluster]`

    up        start every node that is not running (installing Java and the jars on first use)
              and wait until each serves clients and knows every broker
    down      stop every node (SIGTERM, SIGKILL past KAFKA_STOP_TIMEOUT)
    status    one line per node (`kafka     up    127.0.0.1:9092   pid 123`); exit 0 when every
              node answers, 3 otherwise
    kill N    SIGKILL node N (its id or name, e.g. 2 or kafka-2); `up` starts it again
    describe  who leads what: each partition's leader, replicas and in-sync replicas (needs
              kafka-python: run it with .venv/bin/python)
    env       the application's settings for this topology, as VARIABLE=value lines

Environment: KAFKA_PORT moves the single node (9092; its controller on KAFKA_PORT+1), KAFKA_HEAP
replaces the nodes' heap options (single `-Xms512m -Xmx512m`, cluster `-Xms256m -Xmx256m`),
KAFKA_TIMEOUT and KAFKA_STOP_TIMEOUT bound start and stop (60 s, 30 s).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from stack import host, kafka_nodes
from stack.topology import TOPOLOGIES, application_env, topology

ROOT = Path(__file__).resolve().parents[1]
ACTIONS = ("up", "down", "status", "kill", "describe", "env")
NOT_ALL_UP = 3


def _arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m stack",
        description=(__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    engines = parser.add_subparsers(dest="engine", required=True, metavar="ENGINE")
    kafka = engines.add_parser("kafka", help="the Kafka nodes (KRaft, broker and controller each)")
    kafka.add_argument("action", choices=ACTIONS)
    kafka.add_argument("node", nargs="?", help="kill: the node's id or name")
    kafka.add_argument("--topology", choices=TOPOLOGIES, default="single")
    kafka.add_argument("--topic", action="append", help="describe: only this topic (repeatable)")
    arguments = parser.parse_args(argv)
    if (arguments.action == "kill") != (arguments.node is not None):
        parser.error("kill takes a NODE, and only kill does")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _arguments(sys.argv[1:] if argv is None else argv)
    heap = os.environ.get("KAFKA_HEAP", "").split()
    stack = topology(
        arguments.topology,
        ROOT,
        kafka_port=int(os.environ.get("KAFKA_PORT", "9092")),
        heap=tuple(heap) or None,
    )
    start_timeout = float(os.environ.get("KAFKA_TIMEOUT", kafka_nodes.START_TIMEOUT_SECONDS))
    stop_timeout = float(os.environ.get("KAFKA_STOP_TIMEOUT", kafka_nodes.STOP_TIMEOUT_SECONDS))
    try:
        match arguments.action:
            case "up":
                kafka_nodes.up(stack, start_timeout)
            case "down":
                kafka_nodes.down(stack, stop_timeout)
            case "kill":
                kafka_nodes.kill(stack, arguments.node)
            case "status":
                lines, every = kafka_nodes.status_lines(stack)
                print("\n".join(lines))
                return 0 if every else NOT_ALL_UP
            case "env":
                print("\n".join(f"{k}={v}" for k, v in application_env(stack).items()))
            case "describe":
                from stack.kafka_describe import describe  # kafka-python: the venv's

                print(describe(stack, arguments.topic or ()))
    except (host.Failure, KeyError) as failure:
        print(failure if isinstance(failure, host.Failure) else failure.args[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
