"""Projected data-parallel scaling: gradient all-reduce time and efficiency for 8 to 64 cards (a model, not a run).

Gradients are all-reduced every step. With HCCL's hierarchical scheme, each node reduce-scatters inside the node
over HCCS, every card all-reduces its 1/p share with the same card of the other nodes over its own RoCE port, then
the node all-gathers:
    t = 2 (p-1)/p * B / intra  +  2 (n-1)/n * (B/p) / inter          (p cards per node, n nodes, B gradient bytes)
Optionally part of it hides behind the backward pass (MindSpore fuses gradients into buckets and overlaps their
all-reduce with the rest of backward): step = compute + max(0, t - overlap * backward share * compute).
"""
from dataclasses import dataclass


@dataclass
class Projection:
    cards: int
    allreduce_ms: float
    step_ms: float
    efficiency: float
    images_per_s: float


def allreduce_seconds(grad_bytes, cards, cards_per_node, intra_gbs, inter_gbs):
    """Hierarchical ring all-reduce time in seconds; bandwidths in GB/s (bytes, not bits)."""
    per_node = min(cards, cards_per_node)
    nodes = max(1, cards // cards_per_node)
    inside = 2 * (per_node - 1) / per_node * grad_bytes / (intra_gbs * 1e9)
    across = 2 * (nodes - 1) / nodes * (grad_bytes / per_node) / (inter_gbs * 1e9) if nodes > 1 else 0.0
    return inside + across


def project(grad_bytes, compute_ms, batch_per_card, cards_list, cards_per_node=8, intra_gbs=30.0, inter_gbs=12.5,
            overlap=0.0, backward_share=2 / 3):
    """One Projection per card count: compute_ms is one card's step without communication."""
    rows = []
    for cards in cards_list:
        comm_ms = 1e3 * allreduce_seconds(grad_bytes, cards, cards_per_node, intra_gbs, inter_gbs)
        step_ms = compute_ms + max(0.0, comm_ms - overlap * backward_share * compute_ms)
        rows.append(Projection(cards, comm_ms, step_ms, compute_ms / step_ms, cards * batch_per_card / step_ms * 1e3))
    return rows
