"""The Textual app: a thin face over nanochat_ckpt_tui.store."""
