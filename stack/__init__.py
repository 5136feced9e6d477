"""The services this project runs on, described once per topology.

`topology` says what runs where: each engine's nodes with their ids, ports and directories, for
the single-node stack `make services` starts (`single`) and the replicated one on loopback
(`cluster`). Everything else is derived from it: each node's configuration
(`kafka_properties`), how the nodes are started, stopped, killed and reported
(`kafka_nodes`, `python -m stack kafka up|down|status|kill|describe|env`), and the settings the
application needs to reach them (`topology.application_env`).

The package describes services; the application reads its settings from the environment
(arena/settings.py) and never imports it, nor does this package import the application. It runs
on the standard library alone, so that `scripts/services.sh` can start Kafka with any Python
3.11 before `.venv` exists; only `describe` (kafka-python's admin client) needs the venv.
"""
