"""nanochat-ckpt: see, compare and prune nanochat checkpoints."""

__version__ = "0.1.0"
