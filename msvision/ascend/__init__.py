"""Ascend readiness without a device: the ops and dtypes of msvision's compiled graphs (graph_ops, audit), the AI
Core support of Ascend 910 / 910B they are checked against (support), and the on-device check (check)."""
