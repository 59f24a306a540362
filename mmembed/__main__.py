"""``python -m mmembed`` runs the command line."""

from mmembed.cli import main

main()
