"""``snnas dashboard results/<study>``: optuna-dashboard on the study's own storage, in the browser."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from snnas.cli.common import CliError, err_console


def dashboard(
    directory: Path = typer.Argument(..., help="A study folder (results/<study>) holding study.journal."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Database URL, if the study lives in one "
                                                                  "(PostgreSQL)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (127.0.0.1: this machine only; "
                                                        "the dashboard can rename and delete studies)."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="Port to listen on."),
) -> None:
    """Browse a study (running or finished) in optuna-dashboard: trials, Pareto front, parameter
    importances. Ctrl-C stops it."""
    try:
        import optuna_dashboard
    except ImportError:
        raise CliError("optuna-dashboard is not installed: pip install 'snnas[dashboard]'") from None
    from snnas.nas.report.archref import load_study
    from snnas.nas.search.study import redact

    study = load_study(directory, storage=storage)  # one clear line if the study is not there
    if storage is None:
        from snnas.nas.search.journal import open_journal

        storage_obj, _ = open_journal(directory / "study.journal")
        where = str(directory / "study.journal")
    else:
        storage_obj, where = storage, redact(storage, storage)
    err_console.print(f"serving study {study.study_name!r} ({len(study.trials)} trials, {where}) at "
                      f"http://{host}:{port}/dashboard/ ; Ctrl-C stops", markup=False, highlight=False, soft_wrap=True)
    try:
        optuna_dashboard.run_server(storage_obj, host=host, port=port)
    except OSError as exc:
        raise CliError(f"--host {host} --port {port}: cannot listen ({exc.strerror or exc}); try another --port") \
            from None
    except KeyboardInterrupt:
        err_console.print("dashboard stopped", markup=False, highlight=False)
