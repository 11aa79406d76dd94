"""``snnas report DIR``: rebuild trials.csv, pareto.csv, plots and summary.json from a study's storage."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.common import CliError, console


def report(
    directory: Path = typer.Argument(..., help="A study folder (results/<study>) holding study.journal."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Database URL, if the study lives in one."),
    study: Optional[str] = typer.Option(None, "--study", help="Study name (default: the folder's name)."),
    ref_energy: Optional[float] = typer.Option(None, "--ref-energy", help="Hypervolume reference energy (mJ)."),
) -> None:
    """Rebuild the outputs of a search from its storage."""
    import optuna

    from nas.report import write_reports

    name = study or directory.name
    if storage is None:
        journal = directory / "study.journal"
        if not journal.is_file():
            raise CliError(f"{directory}: no study.journal here (pass --storage URL for a database study)")
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage_obj = JournalStorage(JournalFileBackend(str(journal)))
    else:
        storage_obj = storage
    try:
        loaded = optuna.load_study(study_name=name, storage=storage_obj)
    except KeyError:
        raise CliError(f"no study named {name!r} in {storage or directory}") from None
    summary = write_reports(loaded, directory, ref_energy_mj=ref_energy)
    console.print(f"wrote {summary.trials_csv}, {summary.pareto_csv}, "
                  f"{', '.join(p.name for p in summary.plots) or 'no plot (no complete trial)'}; "
                  f"hypervolume {summary.hypervolume:.4g} (reference {summary.reference})")
