"""``python -m hub.cli``: the ``cti-hub`` command."""

from hub.cli import main

main()
