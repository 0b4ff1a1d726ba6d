"""Environment families: one module each, every quantity batched over agents (leading axis)."""
