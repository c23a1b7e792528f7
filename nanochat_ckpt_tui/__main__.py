"""``python -m nanochat_ckpt_tui``: the same as the ``nanochat-ckpt`` command."""

import sys

from .cli import main

sys.exit(main())
