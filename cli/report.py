"""``snnas report DIR``: rebuild trials.csv, pareto.csv, plots and summary.json from a study's storage."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.common import CliError, console, err_console


def report(
    directory: Path = typer.Argument(..., help="A study folder (results/<study>) holding study.journal."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Database URL, if the study lives in one."),
    study: Optional[str] = typer.Option(None, "--study", help="Study name (default: the folder's name)."),
    ref_energy: Optional[float] = typer.Option(None, "--ref-energy", help="Hypervolume reference energy (mJ)."),
) -> None:
    """Rebuild the outputs of a search from its storage."""
    import optuna

    from nas.report import write_reports

    from nas.study import redact

    name = study or directory.name
    if storage is None:
        journal = directory / "study.journal"
        if not journal.is_file():
            raise CliError(f"{directory}: no study.journal here (pass --storage URL for a database study)")
        from nas.journal import open_journal

        storage_obj, repaired = open_journal(journal)
        if repaired is not None:
            err_console.print(f"note: {repaired}", markup=False, highlight=False)
    else:
        storage_obj = storage
    try:
        loaded = optuna.load_study(study_name=name, storage=storage_obj)
    except KeyError:
        raise CliError(f"no study named {name!r} in {redact(storage, storage) if storage else directory}") from None
    except Exception as exc:  # an unreachable database, a journal that cannot be read
        raise CliError(f"{redact(storage, storage) if storage else directory}: cannot read the study "
                       f"({redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, storage)[:160]})") \
            from None
    summary = write_reports(loaded, directory, ref_energy_mj=ref_energy)
    console.print(f"wrote {summary.trials_csv}, {summary.pareto_csv}, "
                  f"{', '.join(p.name for p in summary.plots) or 'no plot (no complete trial)'}; "
                  f"hypervolume {summary.hypervolume:.4g} (reference {summary.reference})")
