"""``python -m seawall`` runs the CLI."""

from seawall.cli.main import main

main()
