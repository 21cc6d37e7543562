"""Benchmarks: python scripts/benchmark.py --models vgg16 ese_vovnet39b --batch_size 8 --image_size 224
[--mode graph|pynative] [--compare timm mindcv] [--onednn-isa default] [--json FILE]; --data (data pipelines,
exact_resume on and off); --data_scale 10000 100000 300000 (start-up on ImageNet-shaped folders); --loop (host reads
per step, before/now)."""
from msvision.bench.cli import main

if __name__ == "__main__":
    main()
