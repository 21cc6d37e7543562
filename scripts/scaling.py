"""Projected data-parallel scaling of a model on Ascend clusters: all-reduce time, step time, efficiency, img/s.

A projection from a model (msvision/scaling.py), not a measurement: e.g.
    python scripts/scaling.py --model vgg13 --step_ms 30.15 --batch_per_card 32
(30.15 ms/step at 32 per card is MindCV's published vgg13 figure on 8x Ascend 910*, which already includes the
8-card all-reduce; --step_ms is taken as compute alone, so 8-card rows are an upper bound on the overhead.)
"""
import argparse

from msvision.cli import run_cli
from msvision.errors import MsvisionError


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="registered model (its parameter count gives the bytes)")
    parser.add_argument("--step_ms", type=float, required=True, help="one card's step time without communication")
    parser.add_argument("--batch_per_card", type=int, default=32)
    parser.add_argument("--grad_bytes_per_param", type=int, default=4, help="4 = fp32 gradients, 2 = fp16")
    parser.add_argument("--cards", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--cards_per_node", type=int, default=8)
    parser.add_argument("--intra_gbs", type=float, default=30.0, help="HCCS bandwidth per card inside a node, GB/s")
    parser.add_argument("--inter_gbits", type=float, nargs="+", default=[100.0, 200.0],
                        help="RoCE bandwidth per card between nodes, Gb/s (one table each)")
    parser.add_argument("--overlap", type=float, default=0.7,
                        help="share of the backward pass that can hide all-reduce (gradient fusion + overlap)")
    args = parser.parse_args(argv)
    if args.step_ms <= 0 or not 0.0 <= args.overlap <= 1.0:
        raise MsvisionError("--step_ms must be > 0 and --overlap in [0, 1]")
    from msvision import create_model
    from msvision.models.complexity import count_params
    from msvision.bench.allreduce_model import project

    params = count_params(create_model(args.model))
    grad_bytes = params * args.grad_bytes_per_param
    print(f"{args.model}: {params / 1e6:.2f}M parameters, {grad_bytes / 1e6:.0f} MB of gradients per all-reduce; "
          f"compute {args.step_ms} ms/step at {args.batch_per_card} per card; HCCS {args.intra_gbs} GB/s per card")
    for gbits in args.inter_gbits:
        print(f"\nRoCE {gbits:g} Gb/s per card between nodes (projection)")
        print(f"{'cards':>6}{'all-reduce ms':>15}{'step ms':>10}{'efficiency':>12}{'img/s':>10}"
              f"{'step ms (overlap)':>19}{'efficiency':>12}{'img/s':>10}")
        plain = project(grad_bytes, args.step_ms, args.batch_per_card, args.cards, args.cards_per_node,
                        args.intra_gbs, gbits / 8)
        hidden = project(grad_bytes, args.step_ms, args.batch_per_card, args.cards, args.cards_per_node,
                         args.intra_gbs, gbits / 8, overlap=args.overlap)
        for a, b in zip(plain, hidden):
            print(f"{a.cards:>6}{a.allreduce_ms:>15.1f}{a.step_ms:>10.1f}{a.efficiency:>12.1%}{a.images_per_s:>10.0f}"
                  f"{b.step_ms:>19.1f}{b.efficiency:>12.1%}{b.images_per_s:>10.0f}")


if __name__ == "__main__":
    run_cli(main)
