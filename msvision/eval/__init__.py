"""After training: metrics over a split, validate.py's body, prediction from checkpoints, export."""
