"""Published ImageNet weights of every reference, per model and source: where the file is, how to verify it, its
layout and the accuracy its publisher reports. Each model's PretrainedCfg carries its entries (first = default).

Facts, from the sources themselves:
- torchvision: URL and sha256 prefix (the 8 hex digits in the file name) from torchvision's vgg.py (the current
  vgg11 / vgg13 files); top-1 / top-5 from its weight metadata (ImageNet-1K acc@1 / acc@5).
- MindCV: vgg13 / vgg19 "910v2" files and top-1 from MindCV's VGG model page; no top-5 with them, and no digest:
  the 8 hex digits in MindCV's names are not documented as one, so such a file is checked by loading it strictly.
- 1e100: files, sizes and sha256 from the Git LFS pointers of 1e100/vovnet_v2; top-1 / top-5 from its README.
- timm: model.safetensors of the hub repositories timm/<model>.<tag>; timm publishes no hash or size in its code (the
  hub verifies its own files); accuracy in timm's results/results-imagenet.csv, not recorded here.
"""
import dataclasses
from typing import Optional

TORCHVISION_URL = "https://download.pytorch.org/models/"
MINDCV_URL = "https://download-mindspore.osinfra.cn/toolkits/mindcv/vgg/"
E100_URL = "https://f002.backblazeb2.com/file/1e100-public/"


@dataclasses.dataclass(frozen=True)
class PublishedWeights:
    source: str  # timm, torchvision, mindcv or 1e100 (also the converter's layout)
    file: str  # the file name as published
    url: Optional[str] = None  # direct URL (None: a hub file)
    hub_id: Optional[str] = None  # huggingface hub repository (timm)
    sha256: Optional[str] = None  # full digest, or the published prefix of it
    size: Optional[int] = None  # bytes, where published
    top1: Optional[float] = None
    top5: Optional[float] = None
    published_at: str = ""


def _torchvision(name, digest, top1, top5):
    file = f"{name}-{digest}.pth"
    return PublishedWeights("torchvision", file, TORCHVISION_URL + file, sha256=digest, top1=top1, top5=top5,
                            published_at="torchvision.models.VGG weights (ImageNet-1K acc@1 / acc@5)")


def _timm(name, tag):
    return PublishedWeights("timm", "model.safetensors", hub_id=f"timm/{name}.{tag}",
                            published_at="timm results/results-imagenet.csv")


def _e100(file, size, digest, top1, top5):
    return PublishedWeights("1e100", file, E100_URL + file, sha256=digest, size=size, top1=top1, top5=top5,
                            published_at="1e100/vovnet_v2 README")


def _mindcv(file, top1):
    return PublishedWeights("mindcv", file, MINDCV_URL + file, top1=top1,
                            published_at="MindCV configs/vgg README (910v2)")


TORCHVISION = {"vgg11": ("8a719046", 69.020, 88.628), "vgg11_bn": ("6002323d", 70.370, 89.810),
               "vgg13": ("19584684", 69.928, 89.246), "vgg13_bn": ("abd245e5", 71.586, 90.374),
               "vgg16": ("397923af", 71.592, 90.382), "vgg16_bn": ("6c64b313", 73.360, 91.516),
               "vgg19": ("dcbb9e9d", 72.376, 90.876), "vgg19_bn": ("c79401a0", 74.218, 91.842)}

PUBLISHED = {name: (_torchvision(name, *facts), _timm(name, "tv_in1k")) for name, facts in TORCHVISION.items()}
PUBLISHED["vgg13"] += (_mindcv("vgg13-7756f33c-910v2.ckpt", 72.81),)
PUBLISHED["vgg19"] += (_mindcv("vgg19-5104d1ea-910v2.ckpt", 75.24),)
PUBLISHED.update({
    "ese_vovnet19b_dw": (_timm("ese_vovnet19b_dw", "ra_in1k"),),
    "ese_vovnet39b": (_timm("ese_vovnet39b", "ra_in1k"),),
    "ese_vovnet57b": (_timm("ese_vovnet57b", "ra4_e3600_r256_in1k"),),
    "vovnet19": (_e100("vovnet19-72.03-top1.pt", 12403432,
                       "93b80e9cc54565feba698d01629e153e69a54e10397496425288f7db1d210700", 72.011, 90.716),),
    "vovnet27_slim": (_e100("vovnet27-73.07-top1.pt", 15701456,
                            "62d1982221d967039f3dae82ea8109ba6ce0196a2a43020ca37ec15a0e12ee1e", 73.070, 91.580),),
    "vovnet39": (_e100("vovnet39-78.82-top1.pt", 104964569,
                       "cb7a1b90853a537f5fba9d30c8087f620cd29131a9638daabcb40181a2facca4", 78.817, 94.265),),
    "vovnet57": (_e100("vovnet57-79.63-top1.pt", 170114465,
                       "a2fd0c66c62c60948270a59895229e3832ebaf6658a55a54a5909407873be19c", 79.63, 94.68),),
})
