"""Networks by name: ``build_network(NetworkConfig(name=...))``; the choices are ``available_networks()``.

Public API:
    available_networks() -> tuple[str, ...]      registered names (the CLI's choices)
    build_network(config) -> torch.nn.Module     logits (B, K, X - 2m, Y - 2m, Z - 2m) for input (B, C, X, Y, Z)
    network_geometry(config) -> NetworkGeometry  training patch, inference window, margin m, alignment
    get_network_spec(name) -> NetworkSpec        builder and geometry of one network
    SameSizeOutput, valid_sliding_window_inference, pad_for_valid   same-size outputs of valid networks
"""

from __future__ import annotations

from medseg.networks.registry import (
    available_networks,
    build_network,
    get_network_spec,
    network_geometry,
)
from medseg.networks.spec import NetworkGeometry, NetworkSpec
from medseg.networks.valid_padding import (
    SameSizeOutput,
    pad_for_valid,
    valid_sliding_window_inference,
)

__all__ = [
    "NetworkGeometry",
    "NetworkSpec",
    "SameSizeOutput",
    "available_networks",
    "build_network",
    "get_network_spec",
    "network_geometry",
    "pad_for_valid",
    "valid_sliding_window_inference",
]
