"""``python -m compsep_pipeline`` runs the ``compsep`` command line."""

from ._cli import main

main()
