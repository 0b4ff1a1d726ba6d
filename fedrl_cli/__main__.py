"""``python -m fedrl_cli`` is the ``fedrl`` command."""

from fedrl_cli.cli import main

main()
