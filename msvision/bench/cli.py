"""scripts/benchmark.py: parse the options, run the chosen benchmark (or, with --worker, one measurement)."""
import argparse
import json
import os
import tempfile

from msvision.bench import data, inference, loop, startup, throughput
from msvision.bench.common import print_result

WORKERS = {
    "msvision": throughput.worker_msvision,
    "mindcv": lambda opts: throughput.worker_msvision(opts, "mindcv"),
    "timm": throughput.worker_timm,
    "data": lambda opts: data.measure(json.loads(opts.data_spec)),
    "startup": lambda opts: startup.measure(opts.split, opts.cache),
    "infer_prepare": inference.worker_prepare,
    "infer_msvision": inference.worker_msvision_infer,
    "infer_onnx": inference.worker_onnx_infer,
    "infer_timm": inference.worker_timm_infer,
}


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["vgg16", "ese_vovnet39b"])
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--mode", choices=("graph", "pynative"), default="graph")
    parser.add_argument("--jit_level", choices=("O0", "O1", "O2"), default="O0")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median is reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps after the first (compile) step")
    parser.add_argument("--compare", nargs="*", default=[], choices=("timm", "mindcv"))
    parser.add_argument("--onednn-isa", dest="onednn_isa", default=None,
                        help="'default' measures msvision also without the CPU setting (ONEDNN_MAX_CPU_ISA=ALL)")
    parser.add_argument("--env", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra environment for the msvision run (e.g. ONEDNN_MAX_CPU_ISA=AVX512_CORE)")
    parser.add_argument("--data", action="store_true", help="only measure the data pipelines (img/s)")
    parser.add_argument("--data_images", type=int, default=256, help="--data: generated images per epoch")
    parser.add_argument("--rounds", type=int, default=3, help="--data: interleaved rounds (the median is reported)")
    parser.add_argument("--data_scale", type=int, nargs="+", default=None, metavar="FILES",
                        help="only measure start-up on generated ImageNet-shaped folders of these sizes")
    parser.add_argument("--data_root", default=os.path.join(tempfile.gettempdir(), "msvision-data-scale"),
                        help="where --data_scale folders are generated (and reused)")
    parser.add_argument("--loop", action="store_true",
                        help="only measure the train loop with and without a host read per step")
    parser.add_argument("--infer_runtimes", action="store_true",
                        help="only measure CPU inference: msvision, its float32 and int8 ONNX (onnxruntime), timm")
    parser.add_argument("--infer_batch_sizes", type=int, nargs="+", default=[1, 8],
                        help="--infer_runtimes: batch sizes (each exported separately)")
    parser.add_argument("--json", default=None, help="write all results to this file")
    for hidden in ("--worker", "--data_spec", "--split", "--cache", "--onnx_file"):
        parser.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    opts = parse(argv)
    if opts.worker:
        opts.model = opts.models[0]
        print_result(WORKERS[opts.worker](opts))
        return None
    if opts.data_scale:
        rows = startup.run(opts.data_scale, opts.data_root)
    elif opts.infer_runtimes:
        rows = inference.run(opts)
    elif opts.loop:
        rows = loop.run(opts.models, opts.batch_size, opts.image_size, opts.steps)
    elif opts.data:
        rows = data.run(opts)
    else:
        rows = throughput.run(opts)
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)
    return rows
