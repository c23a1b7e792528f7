"""Over SSH every frame is bytes on a link that may be slow: Textual's animations go.

An animated scroll (``g``, ``G``, page keys, the tree following its cursor) is a dozen full
frames of the tree, each as large as the tree itself (bench_wire, 2,000 steps: ``G`` 96 KB
animated, 17 KB not). Over SSH the app jumps instead, unless the user chose a level with
``TEXTUAL_ANIMATIONS``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from textual.constants import AnimationLevel


def over_ssh(environ: Mapping[str, str] = os.environ) -> bool:
    """The terminal is at the other end of an SSH connection (sshd sets these)."""
    return bool(environ.get("SSH_CONNECTION") or environ.get("SSH_TTY"))


def animation_level(current: AnimationLevel,
                    environ: Mapping[str, str] = os.environ) -> AnimationLevel:
    """"none" over SSH when the user did not choose; ``current`` otherwise."""
    if over_ssh(environ) and "TEXTUAL_ANIMATIONS" not in environ:
        return "none"
    return current
