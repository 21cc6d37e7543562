"""python -m msvision.models [--pattern P]: table of models with params, GMACs and input size."""
import argparse

from msvision.models import create_model, get_pretrained_cfg, list_models, reparameterize
from msvision.models.complexity import count_macs, count_params


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pattern", default="*", help="shell-style filter on model names")
    args = parser.parse_args(argv)
    print(f"{'model':<24}{'params(M)':>10}{'GMACs':>8}{'input':>7}  source")
    print("-" * 58)
    for name in list_models(args.pattern):
        cfg = get_pretrained_cfg(name)
        net = create_model(name)
        size = cfg.input_size[-1]
        print(f"{name:<24}{count_params(net) / 1e6:>10.2f}{count_macs(net, size) / 1e9:>8.2f}{size:>7}  {cfg.source}")
        if cfg.fused_form:  # RepVGG: its deployed (fused) form too
            fused = reparameterize(net.set_train(False))
            print(f"{'  fused':<24}{count_params(fused) / 1e6:>10.2f}{count_macs(fused, size) / 1e9:>8.2f}{size:>7}")


if __name__ == "__main__":
    main()
