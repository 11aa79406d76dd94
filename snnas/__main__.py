"""``python -m snnas ...`` runs the ``snnas`` command (also under ``torchrun -m snnas``)."""

from snnas.cli.main import main

main()
