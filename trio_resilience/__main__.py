"""``python -m trio_resilience`` runs the command line."""

from .cli import main

main(prog_name="python -m trio_resilience")
