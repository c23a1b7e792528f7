"""``python -m nanochat_ckpt_tui``: the same as the ``nanochat-ckpt`` command."""

import sys

from .cli import main

if __name__ == "__main__":  # (not when a worker process imports it)
    sys.exit(main())
