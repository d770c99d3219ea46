"""The deployment files in deploy/ start servers the way docs/STORES.md says: every Q-Store
server on the Qdrant store of one 3-node cluster, with replicated shards, and a write
consistency that majority reads always meet and that survives the loss of one node. Their
command lines are parsed by the real `qstore serve` parser, so a renamed flag fails here
rather than in a cluster."""
import argparse
import shlex
from pathlib import Path

import pytest
import yaml

from qstore_server import ServerConfig
from qstore_server.cli import add_serve_arguments

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _serve_config(argv: list[str]) -> ServerConfig:
    assert argv[:2] == ["qstore", "serve"]
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    return ServerConfig.from_args(parser.parse_args(argv[2:]), environ={"QSTORE_API_KEY": "k"})


def _compose():
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    qdrant = [s for name, s in doc["services"].items() if name.startswith("qdrant-")]
    return len(qdrant), shlex.split(doc["services"]["qstore"]["command"])


def _kubernetes():
    text = (DEPLOY / "kubernetes.yaml").read_text()
    docs = {d["metadata"]["name"] + "/" + d["kind"]: d for d in yaml.safe_load_all(text)}
    nodes = docs["qdrant/StatefulSet"]["spec"]["replicas"]
    return nodes, docs["qstore/Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]


@pytest.mark.parametrize("source", [_compose, _kubernetes], ids=["compose", "kubernetes"])
def test_servers_share_a_replicated_qdrant_cluster(source):
    nodes, argv = source()
    config = _serve_config(argv)
    assert nodes == 3 and config.store == "qdrant" and config.qdrant_url.startswith("http://qdrant")
    opts = config.qdrant_options
    assert opts["shard_number"] >= nodes  # every node holds shards
    replicas, acks = opts["replication_factor"], opts["write_consistency_factor"]
    assert replicas <= nodes
    assert acks + (replicas // 2 + 1) > replicas  # a majority read meets every acknowledged write
    assert acks < replicas  # and writes go on with one replica down
