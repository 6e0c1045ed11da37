"""``python -m hub``: the ``cti-hub`` command."""

from hub.cli import main

main()
