"""The one adapter from a parsed config (the argparse Namespace of train.py / validate.py) to the keyword arguments
of each library call, as timm's `optimizer_kwargs(cfg=args)`: nothing below the entry points reads the Namespace."""


# RepVGG's custom L2 replaces the plain decay of these kernels (the official --custwd)
REPVGG_BRANCH_KERNELS = (".rbr_dense.conv.weight", ".rbr_1x1.conv.weight")


def model_kwargs(cfg, initial_weights=True):
    """train.model.build_model's arguments; initial_weights False (a resumed run, which brings its own weights)
    leaves out pretrained and ckpt_path."""
    kwargs = dict(cfg.model_args, model=cfg.model, num_classes=cfg.num_classes, act_layer=cfg.act_layer,
                  freeze_spec=cfg.freeze, amp_level=cfg.amp_level, amp_dtype=cfg.amp_dtype)
    if cfg.drop_rate is not None:
        kwargs["drop_rate"] = cfg.drop_rate
    if cfg.drop_path_rate:
        kwargs["drop_path_rate"] = cfg.drop_path_rate
    if initial_weights:
        kwargs.update(pretrained=cfg.pretrained, checkpoint_path=cfg.ckpt_path, use_ema=cfg.ckpt_ema,
                      new_classifier=cfg.reset_head)
    return kwargs


def model_check_kwargs(cfg):
    """train.model.check_model_options's arguments."""
    return dict(model=cfg.model, pretrained=cfg.pretrained, checkpoint_path=cfg.ckpt_path, amp_level=cfg.amp_level,
                amp_dtype=cfg.amp_dtype, model_args=cfg.model_args, custom_l2=cfg.repvgg_custom_l2)


def optimizer_kwargs(cfg):
    """optim.create_optimizer's arguments (the LR is the caller's: a value or a schedule)."""
    return dict(opt=cfg.opt, weight_decay=cfg.weight_decay, momentum=cfg.momentum, nesterov=cfg.nesterov,
                betas=cfg.opt_betas, eps=cfg.opt_eps, rmsprop_alpha=cfg.rmsprop_alpha,
                lars_coefficient=cfg.lars_coefficient, lars_eps=cfg.lars_eps,
                weight_decay_filter=cfg.weight_decay_filter, head_lr_scale=cfg.head_lr_scale,
                decay_exempt=REPVGG_BRANCH_KERNELS if cfg.repvgg_custom_l2 else ())


def lr_scaling_kwargs(cfg, world_size):
    """optim.schedule.scaled_lr's arguments for a run on world_size devices."""
    return dict(lr=cfg.lr, global_batch=cfg.batch_size * world_size * cfg.grad_accum_steps,
                lr_base_batch_size=cfg.lr_base_batch_size, lr_scale_rule=cfg.lr_scale_rule)


def schedule_kwargs(cfg):
    """optim.schedule.lr_schedule's arguments but the peak LR and the steps per epoch."""
    return dict(epoch_size=cfg.epoch_size, scheduler=cfg.scheduler, warmup_epochs=cfg.warmup_epochs,
                warmup_factor=cfg.warmup_factor, min_lr=cfg.min_lr, decay_epochs=cfg.decay_epochs,
                decay_rate=cfg.decay_rate, milestones=cfg.milestones, num_cycles=cfg.num_cycles,
                cycle_decay=cfg.cycle_decay, cycle_warmup_fraction=cfg.cycle_warmup_fraction,
                htd_lower=cfg.htd_lower, htd_upper=cfg.htd_upper, lr_power=cfg.lr_power)


def step_kwargs(cfg):
    """train.step.TrainStep's arguments (the net, loss, optimizer and the devices are the caller's)."""
    return dict(loss_scale_type=cfg.loss_scale_type, loss_scale=cfg.loss_scale, clip_grad=cfg.clip_grad,
                clip_value=cfg.clip_value, grad_accum_steps=cfg.grad_accum_steps, ema=cfg.ema, ema_decay=cfg.ema_decay,
                custom_l2=cfg.weight_decay / 2 if cfg.repvgg_custom_l2 else 0.0)


def device_kwargs(cfg):
    """device.setup_device's arguments."""
    return dict(device_target=cfg.device_target, mode=cfg.mode, jit_level=cfg.jit_level, seed=cfg.seed)


def split_kwargs(cfg):
    """data.dataset.open_split's arguments but the split's name."""
    return dict(dataset=cfg.dataset, data_dir=cfg.data_dir, train_split=cfg.train_split, val_split=cfg.val_split)


def preprocessing_kwargs(cfg):
    """data.loaders.preprocessing's arguments."""
    return dict(model=cfg.model, image_resize=cfg.image_resize, interpolation=cfg.interpolation,
                crop_pct=cfg.crop_pct, mean=cfg.mean, std=cfg.std)


def augment_kwargs(cfg):
    """data.augment.train_ops' options."""
    return dict(scale=cfg.scale, ratio=cfg.ratio, crop_padding=cfg.crop_padding, hflip=cfg.hflip, vflip=cfg.vflip,
                auto_augment=cfg.auto_augment, color_jitter=cfg.color_jitter, cutout_length=cfg.cutout_length,
                cutout_count=cfg.cutout_count, re_prob=cfg.re_prob, re_scale=cfg.re_scale, re_ratio=cfg.re_ratio,
                re_value=cfg.re_value, re_count=cfg.re_count)


def mixing_kwargs(cfg):
    """data.mixing.BatchMixing's arguments but the sample ids and the seed; None when mixing is off."""
    if cfg.mixup <= 0 and cfg.cutmix <= 0:
        return None
    return dict(num_classes=cfg.num_classes, mixup=cfg.mixup, cutmix=cfg.cutmix, prob=cfg.mixup_prob,
                switch_prob=cfg.mixup_switch_prob, off_epoch=cfg.mixup_off_epoch)


def train_loader_kwargs(cfg):
    """data.loaders.train_loader's arguments but the split and the run's position (epoch, shard, skip, limit)."""
    return dict(preprocess=preprocessing_kwargs(cfg), batch_size=cfg.batch_size, seed=cfg.seed,
                sampler=cfg.sampler, aug_repeats=cfg.aug_repeats, exact_resume=cfg.exact_resume,
                drop_remainder=cfg.drop_remainder, num_parallel_workers=cfg.num_parallel_workers,
                mixing=mixing_kwargs(cfg), **augment_kwargs(cfg))


def step_inputs_kwargs(cfg):
    """The train step's input shapes: batch_size, image_size, num_classes, mixed_targets (mixup or cutmix on: one-hot
    float targets instead of class indices)."""
    return dict(batch_size=cfg.batch_size, image_size=cfg.image_resize, num_classes=cfg.num_classes,
                mixed_targets=cfg.mixup > 0 or cfg.cutmix > 0)


def eval_loader_kwargs(cfg):
    """data.loaders.eval_loader's arguments but the split and the shard."""
    return dict(preprocess=preprocessing_kwargs(cfg), batch_size=cfg.batch_size,
                num_parallel_workers=cfg.num_parallel_workers)


def augment_check_kwargs(cfg):
    """data.augment.check_augment_options' arguments but the image size."""
    return dict(epoch_size=cfg.epoch_size, mixup_off_epoch=cfg.mixup_off_epoch, **augment_kwargs(cfg))


def loss_kwargs(cfg, world_size=1):
    """train.loss.build_loss's arguments but the class counts, for a run on world_size devices."""
    return dict(loss=cfg.loss, label_smoothing=cfg.label_smoothing, class_weight=cfg.class_weight,
                class_weight_beta=cfg.class_weight_beta, logit_adjust_tau=cfg.logit_adjust_tau,
                bce_target_thresh=cfg.bce_target_thresh, eqlv2_gamma=cfg.eqlv2_gamma, eqlv2_mu=cfg.eqlv2_mu,
                eqlv2_alpha=cfg.eqlv2_alpha, parallel=world_size > 1)
