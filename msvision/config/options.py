"""The one Option table: every config key / command-line option with its type, default, help line and range.

Grouped by concern (system, data, imbalance, model and fine-tuning, schedule and optimizer, precision and step,
checkpoints and logging). config.py turns it into argparse and checks YAML values against it.
"""
import dataclasses
from typing import Any, Optional, Sequence


@dataclasses.dataclass(frozen=True)
class Option:
    name: str
    kind: type  # int, float, str, bool, dict (a mapping); list options give the element type and set is_list
    default: Any
    help: str
    choices: Optional[Sequence] = None
    low: Optional[float] = None  # bounds for numbers (and list elements), inclusive unless open_low / open_high
    high: Optional[float] = None
    open_low: bool = False
    open_high: bool = False
    int_as_str: bool = False  # a string option that YAML may give as a number (freeze: 2)
    bool_as_str: bool = False  # a string option that may be true / false (pretrained: true); alone on the CLI: true
    is_list: bool = False
    length: Optional[int] = None  # list options of a fixed number of values
    nullable: bool = False


def _opts(*rows):
    return {row.name: row for row in rows}


O = Option
OPTIONS = _opts(
    # system
    O("mode", int, 0, "0 = GRAPH_MODE, 1 = PYNATIVE_MODE", choices=(0, 1)),
    O("device_target", str, "auto", "device to run on", choices=("auto", "CPU", "GPU", "Ascend")),
    O("jit_level", str, "auto", "graph compile level (O0 kernel by kernel, O1 fusion, O2 whole graph sink); auto: "
      "O2 on Ascend, O0 on GPU and CPU", choices=("auto", "O0", "O1", "O2")),
    O("seed", int, 42, "seed of weights init, data order and augmentation", low=0),
    # data
    O("data_dir", str, None, "ImageNet-style root holding <train_split>/ and <val_split>/ class folders",
      nullable=True),
    O("dataset", str, "imagefolder", "imagefolder (class folders), demo (the built-in digits), cifar10 or cifar100 "
      "(data_dir: the binary archive's folder)", choices=("imagefolder", "demo", "cifar10", "cifar100")),
    O("train_split", str, "train", "sub-folder of data_dir with training images"),
    O("val_split", str, "val", "sub-folder of data_dir with validation images"),
    O("num_parallel_workers", int, 2, "data loading workers per process", low=1),
    O("batch_size", int, 32, "images per device per step", low=1),
    O("drop_remainder", bool, True, "drop the last incomplete training batch"),
    O("image_resize", int, None, "training/eval crop size; default: the model's pretrained input size",
      low=8, nullable=True),
    # augmentation
    O("exact_resume", bool, True, "key every random augmentation by the sample's place in the run, so that a killed "
      "and resumed run ends bit-identical (Python worker processes; false: MindSpore's C++ threads, faster, and a "
      "resume draws other augmentations)"),
    O("scale", float, [0.08, 1.0], "random-resized-crop area range", low=0.0, high=1.0, is_list=True),
    O("ratio", float, [0.75, 1.333], "random-resized-crop aspect range", low=0.0, is_list=True),
    O("crop_padding", int, 0, "instead of the random resized crop: resize to the input size, pad this many pixels on "
      "each side and crop at random (the CIFAR '4 px shift')", low=0),
    O("hflip", float, 0.5, "horizontal flip probability", low=0.0, high=1.0),
    O("vflip", float, 0.0, "vertical flip probability", low=0.0, high=1.0),
    O("color_jitter", float, None, "brightness/contrast/saturation jitter strength (not with auto_augment)", low=0.0,
      nullable=True),
    O("auto_augment", str, None, "randaug-m9-n2[-mstd0.5][-inc1] (RandAugment, m on MindCV's and timm's 0-10 "
      "scale), autoaug (AutoAugment, ImageNet policy) or trivialaug (TrivialAugmentWide)", nullable=True),
    O("re_prob", float, 0.0, "random erasing probability (timm's RandomErasing, after normalisation)", low=0.0,
      high=1.0),
    O("re_scale", float, [0.02, 0.3333], "random erasing: area range of the erased region(s)", low=0.0, high=1.0,
      is_list=True),
    O("re_ratio", float, [0.3, 3.3333], "random erasing: aspect ratio range (log-uniform)", low=0.0, open_low=True,
      is_list=True),
    O("re_value", str, "0", "random erasing fill: 0, or random (per-pixel standard normal, timm's 'pixel' mode)",
      choices=("0", "random"), int_as_str=True),
    O("re_count", int, 1, "random erasing: up to this many regions per image (1 to re_count, as timm)", low=1),
    O("cutout_length", int, 0, "Cutout: side of each square patch set to 0 after normalisation (0 = off)", low=0),
    O("cutout_count", int, 1, "Cutout: patches per image", low=1),
    O("mixup", float, 0.0, "mixup alpha (0 = off)", low=0.0),
    O("cutmix", float, 0.0, "cutmix alpha (0 = off)", low=0.0),
    O("mixup_prob", float, 1.0, "probability that a batch is mixed at all", low=0.0, high=1.0),
    O("mixup_switch_prob", float, 0.5, "with mixup and cutmix on: probability of cutmix for a mixed batch", low=0.0,
      high=1.0),
    O("mixup_off_epoch", int, 0, "no mixing from this epoch on (0-based, as timm; 0 = never off)", low=0),
    O("aug_repeats", int, 1, "repeated augmentation: each drawn image appears this many times in a row (on different "
      "ranks), the epoch keeping the split's length (timm's RepeatAugSampler)", low=1),
    O("interpolation", str, None, "resize interpolation; default: the model's", nullable=True,
      choices=("bilinear", "bicubic", "nearest", "area")),
    O("crop_pct", float, None, "eval centre-crop fraction; default: the model's", low=0.05, high=1.0,
      nullable=True),
    O("mean", float, None, "normalisation mean (0..1 scale) of R, G, B; default: the model's", is_list=True, length=3,
      nullable=True),
    O("std", float, None, "normalisation std (0..1 scale) of R, G, B; default: the model's", low=0.0, open_low=True,
      is_list=True, length=3, nullable=True),
    # class imbalance (counts come from the training split)
    O("sampler", str, "uniform", "training draw per epoch: uniform (each image once), class_balanced (class c with "
      "probability 1/C) or sqrt (proportional to sqrt(n_c)); an image uniformly within its class",
      choices=("uniform", "class_balanced", "sqrt")),
    O("class_weight", str, "none", "per-class loss weights from the training counts, mean 1 over classes: 1/n_c, "
      "1/sqrt(n_c) or the effective number (1-beta)/(1-beta^n_c)",
      choices=("none", "inverse", "sqrt_inverse", "effective_number")),
    O("class_weight_beta", float, 0.999, "beta of class_weight effective_number", low=0.0, high=1.0, open_low=True,
      open_high=True),
    O("loss", str, "ce", "ce (softmax cross-entropy), bce (timm's binary cross-entropy over all classes) or eqlv2 "
      "(Equalization Loss v2: sigmoid BCE whose per-class positive and negative weights follow the accumulated "
      "gradient ratio)", choices=("ce", "bce", "eqlv2")),
    O("bce_target_thresh", float, None, "bce: targets above this become 1, the others 0 (timm's "
      "--bce-target-thresh); null keeps soft targets", low=0.0, high=1.0, open_low=True, open_high=True,
      nullable=True),
    O("eqlv2_gamma", float, 12.0, "eqlv2: steepness of the negative weight f(r) = 1 / (1 + exp(-gamma (r - mu)))",
      low=0.0, open_low=True),
    O("eqlv2_mu", float, 0.8, "eqlv2: the gradient ratio r at which the negative weight is 0.5", low=0.0),
    O("eqlv2_alpha", float, 4.0, "eqlv2: positive weight 1 + alpha (1 - f(r))", low=0.0),
    O("logit_adjust_tau", float, 0.0, "logit-adjusted loss: training logits + tau * log(class prior); 0 = off "
      "(evaluation and export are unchanged)", low=0.0),
    # model
    O("model", str, "vgg16", "registered model name"),
    O("num_classes", int, 1000, "number of classes", low=1),
    O("drop_rate", float, None, "classifier dropout; default: the model's", low=0.0, high=1.0, nullable=True),
    O("drop_path_rate", float, 0.0, "VoVNet stochastic depth: block i of N drops its output per sample with rate "
      "drop_path_rate x i / (N - 1), as timm", low=0.0, high=1.0, open_high=True),
    O("model_args", dict, {}, "the model family's own arguments, passed to it as they are (RepVGG: num_blocks, "
      "width_multiplier, override_groups, deploy); on the command line a JSON object"),
    O("act_layer", str, "relu", "activation of the conv layers (VGG: and its classifier)",
      choices=("relu", "mish", "silu")),
    O("pretrained", str, None, "start from the model's published ImageNet weights (fetched, verified and converted "
      "once): true for the default source, or torchvision, timm, mindcv, 1e100; the classifier is re-initialised for "
      "another num_classes", choices=("true", "torchvision", "timm", "mindcv", "1e100"), nullable=True,
      bool_as_str=True),
    O("ckpt_path", str, None, "initial weights (.ckpt)", nullable=True),
    O("ckpt_ema", bool, False, "with ckpt_path: start from the checkpoint's EMA weights (a second run, 1e100 style)"),
    O("reset_head", bool, False, "with ckpt_path: re-initialise a classifier whose num_classes differs"),
    O("freeze", str, "none", "fine-tuning: none, backbone (all but the classifier) or N (the stem and the first N "
      "stages of a VoVNet or RepVGG / conv blocks of a VGG); frozen parts get no update and keep their BatchNorm "
      "statistics",
      int_as_str=True),
    O("repvgg_custom_l2", bool, False, "RepVGG: the official custom L2 (--custwd): no weight decay on the 3x3 / 1x1 "
      "branch kernels, weight_decay / 2 x the decay of their equivalent fused kernels added to the loss instead"),
    O("head_lr_scale", float, 1.0, "learning-rate multiplier for the classifier (the layer reset_head replaces)",
      low=0.0, open_low=True),
    # schedule and optimizer
    O("epoch_size", int, 90, "number of epochs", low=1),
    O("opt", str, "momentum", "optimizer: sgd, momentum (torch SGD), adamw, adam (torch Adam), rmsprop (torch "
      "RMSprop), lamb (timm Lamb), lars (timm Lars: momentum SGD with layer-wise trust ratios)",
      choices=("sgd", "momentum", "adamw", "adam", "rmsprop", "lamb", "lars")),
    O("nesterov", bool, False, "Nesterov momentum (sgd, momentum, lars)"),
    O("momentum", float, 0.9, "momentum (sgd, momentum, rmsprop, lars; beta1 for adamw)", low=0.0, high=1.0),
    O("opt_betas", float, None, "beta1 beta2 of adam, lamb (and adamw); default 0.9 0.999", low=0.0, high=1.0,
      open_high=True, is_list=True, length=2, nullable=True),
    O("opt_eps", float, None, "epsilon of adam, rmsprop, lamb, adamw; default: 1e-8 (lamb 1e-6)", low=0.0,
      open_low=True, nullable=True),
    O("rmsprop_alpha", float, 0.99, "rmsprop: decay of the squared-gradient average", low=0.0, high=1.0,
      open_high=True),
    O("lars_coefficient", float, 0.001, "lars: trust coefficient", low=0.0, open_low=True),
    O("lars_eps", float, 1e-8, "lars: epsilon of the trust ratio", low=0.0),
    O("weight_decay", float, 1e-4, "weight decay", low=0.0),
    O("weight_decay_filter", str, "norm_and_bias", "parameters exempt from weight decay",
      choices=("disable", "norm_and_bias")),
    O("lr", float, 0.1, "peak learning rate at lr_base_batch_size (global)", low=0.0),
    O("lr_base_batch_size", int, 256, "global batch size that lr refers to", low=1),
    O("lr_scale_rule", str, "linear", "how lr follows the global batch", choices=("linear", "sqrt", "none")),
    O("min_lr", float, 1e-6, "final learning rate of the decay (after scaling)", low=0.0),
    O("scheduler", str, "warmup_cosine_decay", "LR schedule after the linear warmup (one_cycle: its own warm-up phase)",
      choices=("warmup_cosine_decay", "step", "multistep", "constant", "htd", "polynomial", "exponential",
               "one_cycle")),
    O("num_cycles", int, 1, "warmup_cosine_decay: cosine cycles (restarts) over the steps after warmup", low=1),
    O("cycle_decay", float, 1.0, "warmup_cosine_decay: the peak of cycle k is lr x cycle_decay^k", low=0.0, high=1.0,
      open_low=True),
    O("cycle_warmup_fraction", float, 0.0, "warmup_cosine_decay: each cycle opens with a linear rise from min_lr "
      "over this fraction of it", low=0.0, high=1.0, open_high=True),
    O("htd_lower", float, -6.0, "htd: L in lr x 0.5 x (1 - tanh(L + (U - L) t / T)); below htd_upper"),
    O("htd_upper", float, 3.0, "htd: U, above htd_lower (the rate falls from L to U)"),
    O("lr_power", float, 1.0, "polynomial: power of (1 - t / T)", low=0.0, open_low=True),
    O("warmup_epochs", float, 0.0, "linear warmup length in epochs", low=0.0),
    O("warmup_factor", float, 0.0, "warmup starts at lr * warmup_factor", low=0.0, high=1.0),
    O("decay_epochs", int, 30, "step, exponential: epochs per decay by decay_rate", low=1),
    O("decay_rate", float, 0.1, "step, multistep, exponential: multiplier per decay", low=0.0, high=1.0),
    O("milestones", int, [30, 60, 90], "multistep scheduler: epochs at which to decay", low=0, is_list=True),
    O("label_smoothing", float, 0.0, "label smoothing", low=0.0, high=1.0),
    # precision and step
    O("amp_level", str, "O0", "mindspore.amp level", choices=("O0", "O1", "O2", "O3")),
    O("amp_dtype", str, "float16", "low-precision type of amp_level O1-O3 (bfloat16: Ascend 910B; needs no loss "
      "scale)", choices=("float16", "bfloat16")),
    O("loss_scale_type", str, "fixed", "loss scaling", choices=("fixed", "dynamic")),
    O("loss_scale", float, 1.0, "fixed loss scale, or initial dynamic scale", low=1.0),
    O("ema", bool, False, "keep an exponential moving average of the weights"),
    O("ema_decay", float, 0.9999, "EMA decay per optimizer step", low=0.0, high=1.0),
    O("clip_grad", bool, False, "clip gradients by global norm"),
    O("clip_value", float, 15.0, "global-norm clip threshold", low=0.0),
    O("grad_accum_steps", int, 1, "micro-batches per optimizer step", low=1),
    O("dataset_sink_mode", str, "auto", "run sink_size steps per host call on the device: auto = on Ascend/GPU "
      "(not available on CPU, where the loop keeps the same structure)", choices=("auto", "true", "false")),
    O("sink_size", int, -1, "batches per host iteration, a multiple of grad_accum_steps; logs and checkpoints "
      "land on its boundaries (-1 = log_interval)", low=-1),
    # checkpoints and logging
    O("ckpt_save_dir", str, "./outputs", "where checkpoints, config.yaml and logs go"),
    O("ckpt_save_interval", int, 1, "save every N epochs", low=1),
    O("ckpt_save_steps", int, 0, "also save every N optimizer steps mid-epoch (0 = off)", low=0),
    O("keep_checkpoint_max", int, 5, "checkpoints kept by the retention policy", low=1),
    O("ckpt_save_policy", str, "latest_k", "retention", choices=("latest_k", "top_k")),
    O("resume", str, None, "'auto' (newest checkpoint in ckpt_save_dir) or a checkpoint path", nullable=True),
    O("val_while_train", bool, True, "evaluate on the val split during training"),
    O("val_interval", int, 1, "evaluate every N epochs", low=1),
    O("log_interval", int, 20, "log every N steps", low=1),
    O("max_nonfinite_steps", int, 10, "consecutive non-finite losses that stop the run", low=1),
)
