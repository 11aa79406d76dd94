"""``snnas report DIR``: rebuild trials.csv, pareto.csv, plots and summary.json from a study's storage."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from snnas.cli.common import CliError, console, err_console


def report(
    directory: Path = typer.Argument(..., help="A study folder (results/<study>) holding study.journal."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Database URL, if the study lives in one."),
    study: Optional[str] = typer.Option(None, "--study", help="Study name (default: the folder's name)."),
    ref_energy: Optional[float] = typer.Option(None, "--ref-energy", help="Hypervolume reference energy (mJ)."),
    latex: bool = typer.Option(False, "--latex", help="Also write pareto.tex: the front as a booktabs table, with "
                                                      "trained accuracies where snnas train has run."),
    profile: Optional[list[str]] = typer.Option(None, "--profile", "-p", show_default=False,
                                                help="Energy columns of pareto.tex (default: every profile the "
                                                     "search priced); repeatable."),
    every: bool = typer.Option(False, "--all", help="pareto.tex lists every complete trial, not only the front."),
    energy_model: Optional[str] = typer.Option(None, "--energy-model", show_default=False,
                                               help="The energy the front is drawn on: arithmetic or lemaire "
                                                    "(default: the one the search optimised)."),
) -> None:
    """Rebuild the outputs of a search from its storage (trials.csv, pareto.csv, the Pareto figure,
    summary.json; pareto.tex with --latex)."""
    import optuna

    from snnas.nas.report.tables import check_energy_model, write_reports

    from snnas.nas.search.study import redact

    name = study or directory.name
    if energy_model is not None:
        check_energy_model(energy_model)  # before the study is opened
    if storage is None:
        journal = directory / "study.journal"
        if not journal.is_file():
            raise CliError(f"{directory}: no study.journal here (pass --storage URL for a database study)")
        from snnas.nas.search.journal import open_journal

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
    if ref_energy is not None and not (ref_energy > 0 and ref_energy < float("inf")):
        raise CliError(f"--ref-energy {ref_energy}: expected a positive number of mJ")
    try:
        summary = write_reports(loaded, directory, ref_energy_mj=ref_energy, latex=latex, latex_profiles=profile,
                                latex_all=every, energy_model=energy_model)
    except OSError as exc:
        raise CliError(f"{directory}: cannot write the reports ({exc.strerror or exc})") from None
    written = [summary.trials_csv.name, summary.pareto_csv.name, *(p.name for p in summary.plots),
               "summary.json", *([summary.latex.name] if summary.latex else [])]
    console.print(f"{directory}: {summary.line()}; front {summary.front_size} ({summary.energy_model} energy); hypervolume "
                  f"{summary.hypervolume:.4g} (reference energy {summary.reference['energy_mj']:.4g} mJ); wrote "
                  f"{', '.join(written)}", soft_wrap=True, highlight=False)
