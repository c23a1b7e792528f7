"""Moved to :mod:`nanochat_ckpt_tui.cli.archive`; kept so that old imports still work."""

from .cli.archive import add_archive_commands, cmd_archive, cmd_verify

__all__ = ["add_archive_commands", "cmd_archive", "cmd_verify"]
