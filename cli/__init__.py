"""snnas.cli: the ``snnas`` command line (typer + rich live only here)."""
