"""``snnas space show|validate``: look at and check a search space file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.table import Table

from snnas.cli.common import console

app = typer.Typer(help="Show or validate a search space (space.yaml).", no_args_is_help=True)


@app.command("show")
def show(path: Optional[Path] = typer.Argument(None, show_default=False,
                                               help="The space file (default: the space snnas search uses)."),
         ) -> None:
    """Print every key of the space and its choices."""
    from snnas.nas.search.space import SearchSpace, default_space_path

    path = path or default_space_path()
    space = SearchSpace.from_yaml(path)
    table = Table(title=f"{path} (sha256 {space.digest})", box=box.SIMPLE_HEAD)
    table.add_column("key")
    table.add_column("choices")
    for key, shown in space.describe():
        table.add_row(key, shown)
    console.print(table)
    console.print(f"{space.size():,} raw combinations; widths per stage: {', '.join(map(str, space.widths()))}")


@app.command("validate")
def validate(path: Path = typer.Argument(..., help="The space file."),
             resolution: int = typer.Option(16, "--resolution", help="Image side the search will use.")) -> None:
    """Check a space file strictly; exit 2 with the offending key's path when it is invalid."""
    from snnas.nas.search.space import DataShape, SearchSpace

    space = SearchSpace.from_yaml(path)
    space.check_data(DataShape(resolution, 1, 10))
    console.print(f"{path}: valid ({space.size():,} raw combinations)")
