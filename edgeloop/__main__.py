"""``python -m edgeloop`` runs the CLI."""

from edgeloop.cli import main

main()
