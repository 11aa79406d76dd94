"""``snnas arch show|front``: the whole architecture of a trial, a zoo entry or a file; a study's front."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from snnas.cli.common import CliError, OutputFormat, console, write_text_atomic

app = typer.Typer(help="Show architectures: a study's trials, its front, zoo entries, files.", no_args_is_help=True)


@app.command("show")
def show(
    ref: str = typer.Argument(..., metavar="ARCH", help="results/<study>#<trial>, a zoo name, an architecture file "
                                                        "or an snnas model file."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Database URL, for a study that lives in one."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write it to this file (.yaml or .json) "
                                                                       "for snnas train."),
    fmt: OutputFormat = typer.Option(None, "--format", "-f", show_default=False,
                                     help="yaml is the default; json."),
) -> None:
    """Print every field of an architecture (as YAML that `snnas train` reads back)."""
    from snnas.nas.report.archref import resolve_arch, to_yaml

    source = resolve_arch(ref, storage=storage)
    as_json = fmt is OutputFormat.json or (fmt is None and output is not None and output.suffix == ".json")
    if fmt is OutputFormat.csv:
        raise CliError("--format csv: an architecture is shown as yaml (default) or json")
    comments = [f"{source.label} ({source.kind})"]
    proxy = source.proxy
    if proxy.get("objective") is not None:
        energy = ", ".join(f"{k} {v:.4g} mJ" for k, v in (proxy.get("energy_mj") or {}).items())
        name = proxy.get("objective_name", "objective")
        fraction = name in ("accuracy", "likelihood")
        shown = f"{proxy['objective'] * 100:.2f}%" if fraction else f"{proxy['objective']:.4g}"
        accuracy = f" (accuracy {proxy['accuracy'] * 100:.2f}%)" if name == "likelihood" and proxy.get("accuracy") \
            is not None else ""
        comments.append(f"proxy {name} {shown}{accuracy}; {energy}; "
                        f"{proxy.get('params')} parameters; searched at {proxy.get('resolution')} px")
    text = json.dumps(source.arch.to_dict(), indent=2) + "\n" if as_json else to_yaml(source.arch, comments=comments)
    if output is None:
        print(text, end="")
        return
    write_text_atomic(output, text)
    console.print(f"wrote {output}", highlight=False)


@app.command("front")
def front(
    directory: Path = typer.Argument(..., help="A study folder (results/<study>)."),
    top: Optional[int] = typer.Option(None, "--top", min=1, help="Only the N front members of highest objective."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Database URL, for a study that lives in one."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print each member's objective and energy."),
) -> None:
    """Print the study's Pareto-front trials as DIR#N references, best objective first (one per line,
    for a shell loop: `for a in $(snnas arch front results/snnas --top 3); do snnas train $a; done`)."""
    import pandas as pd

    from snnas.nas.report.archref import front_trials

    members = front_trials(directory, storage=storage)
    if not members:
        raise CliError(f"{directory}: no complete trial yet, so no front")
    for row in members[:top]:
        ref = f"{str(directory).rstrip('/')}#{int(row['trial'])}"
        if verbose:
            accuracy = "" if row.get("accuracy") is None or pd.isna(row["accuracy"]) else \
                f"\taccuracy {row['accuracy'] * 100:.2f}%"
            print(f"{ref}\tobjective {row['objective']:.4g}{accuracy}\tenergy {row['energy_mj']:.4g} mJ\t"
                  f"{int(row['params'])} parameters")
        else:
            print(ref)
