"""Training: the jitted step (loss scale, clipping, accumulation, EMA) and the epoch loop."""
