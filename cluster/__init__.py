"""Several nodes coordinated on Redis: the node registry, camera leases and placement, signed
requests between nodes, and events to every node. The Redis protocol only: wiring it to the
stream hub and the relay is the composition root's (``server.cluster``)."""

from cluster.events import RESYNC
from cluster.hop import CLIENT_HEADER, HOP_HEADER, HopRefused, sign, verify
from cluster.node import REDIS_ERRORS, ClusterNode, Placement, default_node_id
from cluster.registry import DEAD_AFTER_S, HEARTBEAT_S, NodeInfo, NodeLoad

__all__ = ["CLIENT_HEADER", "DEAD_AFTER_S", "HEARTBEAT_S", "HOP_HEADER", "REDIS_ERRORS",
           "RESYNC", "ClusterNode", "HopRefused", "NodeInfo", "NodeLoad", "Placement",
           "default_node_id", "sign", "verify"]
