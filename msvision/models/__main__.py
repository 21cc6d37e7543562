"""python -m msvision.models [--pattern P]: table of models with params, GMACs and input size.
python -m msvision.models report MODEL [--image_size S] [--num_classes N] [--model_args JSON] [--deploy]
[--dtype fp32|fp16|int8] [--json OUT]: per conv/linear layer, the output shape, parameters, MACs and on-chip bytes."""
import argparse
import json
import sys

from msvision.config.parse import parse_json_mapping
from msvision.errors import ArgumentParser, run_cli
from msvision.files import check_output, write_text
from msvision.models import create_model, get_pretrained_cfg, list_models, reparameterize
from msvision.models.complexity import DTYPE_BYTES, count_macs, count_params, layer_report
from msvision.models.reparam import deployed


def at_least(low):
    """An argparse type: an integer >= low."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def model_table(argv):
    parser = ArgumentParser(description=__doc__)
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


def format_layers(report, model):
    """The report as a table: one row per layer, then the totals and the largest layer."""
    kib = 1024
    lines = [f"{model} at {report['image_size']} px, {report['dtype']} (accumulator "
             f"{'int32' if report['dtype'] == 'int8' else 'float32'}), one image",
             f"{'layer':<40}{'output':>18}{'params':>12}{'MACs':>14}{'on-chip KiB':>13}{'bytes':>12}"]
    for row in report["layers"]:
        shape = "x".join(str(v) for v in row["output_shape"])
        lines.append(f"{row['name']:<40}{shape:>18}{row['params']:>12}{row['macs']:>14}"
                     f"{row['onchip_bytes'] / kib:>13.1f}{row['onchip_bytes']:>12}")
    largest = report["max_onchip"]
    lines += [f"total: {report['params']} parameters ({report['layer_params']} in conv/linear layers), "
              f"{report['macs']} MACs",
              f"largest layer on chip: {largest['name']}, {largest['bytes'] / kib:.1f} KiB ({largest['bytes']} bytes)"]
    return "\n".join(lines)


def model_report(argv):
    parser = ArgumentParser(prog="python -m msvision.models report", description=__doc__)
    parser.add_argument("model", help="a registered model name (python -m msvision.models lists them)")
    parser.add_argument("--image_size", type=at_least(32), default=None, help="input size, at least 32 (default: the "
                                                                         "model's)")
    parser.add_argument("--num_classes", type=at_least(1), default=None, help="classifier size (default: the model's)")
    parser.add_argument("--model_args", type=parse_json_mapping, default={}, help="the family's arguments as JSON")
    parser.add_argument("--deploy", action="store_true", help="the deployed form (a RepVGG's fused convs)")
    parser.add_argument("--dtype", default="fp32", choices=DTYPE_BYTES, help="weights and activations type")
    parser.add_argument("--json", default=None, help="also write the report to this JSON file")
    args = parser.parse_args(argv)
    if args.json:
        check_output(args.json, "the report")
    net = create_model(args.model, num_classes=args.num_classes, **args.model_args).set_train(False)
    if args.deploy:
        net = deployed(net)
    report = layer_report(net, args.image_size or get_pretrained_cfg(args.model).input_size[-1], args.dtype)
    report.update(model=args.model, deploy=args.deploy)
    print(format_layers(report, args.model))
    if args.json:
        write_text(args.json, json.dumps(report, indent=1))
        print(f"report written to {args.json}")
    return report


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        return model_report(argv[1:])
    return model_table(argv)


if __name__ == "__main__":
    run_cli(main)
