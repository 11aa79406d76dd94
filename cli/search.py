"""``snnas search``: the main job. Searches the space for the accuracy / energy trade-off."""

from __future__ import annotations

import errno
import json
import math
import os
import platform
import signal
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from snnas.cli.common import CliError, console, err_console, load_data, resolve_device


def _versions() -> dict:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for pkg in ("snnas", "torch", "optuna", "spikingjelly", "numpy", "pandas"):
        try:
            out[pkg] = version(pkg)
        except Exception:  # a package installed oddly must not stop the run
            out[pkg] = "unknown"
    return out


FRACTIONS = ("likelihood", "accuracy")  # objectives in [0, 1], shown as percentages
NAMES = {"sahd_score": "SAHD score"}


def _arch_line(arch) -> str:
    return (f"{'/'.join(arch.attention)} T={arch.time_steps} dims {'-'.join(map(str, arch.dims))} "
            f"depths {'-'.join(map(str, arch.depths))} {arch.stem} {arch.residual} {arch.neuron} {arch.mlp}")


class _Display:
    """Live progress: trials done / budget, elapsed and ETA, the candidates in training and their
    steps, the front, the best objective per energy band."""

    def __init__(self, budget: int, done: int, objective: str) -> None:
        self.progress = Progress(TextColumn("[bold]search"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("ETA {task.fields[eta]}"), console=err_console)
        self.task = self.progress.add_task("trials", total=budget, completed=done, eta="after the first trial")
        self.training: dict[int, tuple[int, int, str]] = {}  # trial -> (step, steps, architecture line)
        self.points: list[tuple[float, float]] = []
        self.objective = objective
        self.failed = 0
        self.pruned = 0
        self.start = time.perf_counter()
        self.first_done = done

    @property
    def total(self) -> int:
        return int(self.progress.tasks[0].total)

    def seed(self, study) -> None:
        for t in study.trials:
            if t.values:
                self.points.append((t.values[0], t.values[1]))

    def eta_s(self, done: int) -> float | None:
        """Seconds left at this run's pace so far; None before its first finished trial."""
        finished = done - self.first_done
        if finished <= 0:
            return None
        return (time.perf_counter() - self.start) / finished * max(0, self.total - done)

    def _set_done(self, done: int) -> None:
        done = min(done, self.total)
        eta = self.eta_s(done)
        self.progress.update(self.task, completed=done,
                             eta="after the first trial" if eta is None else _clock(eta))

    def bands(self) -> list[str]:
        """The best objective in each of up to four energy bands (log scale), lowest energy first."""
        points = [(o, e) for o, e in self.points if e > 0 and math.isfinite(e) and math.isfinite(o)]
        if not points:
            return []
        lo, hi = math.log10(min(e for _, e in points)), math.log10(max(e for _, e in points))
        n = 1 if hi - lo < 1e-9 else 4
        best: list[float | None] = [None] * n
        for o, e in points:
            i = 0 if n == 1 else min(n - 1, int((math.log10(e) - lo) / (hi - lo) * n))
            best[i] = o if best[i] is None else max(best[i], o)
        edges = [10 ** (lo + (hi - lo) * i / n) for i in range(n + 1)]
        cells = []
        for i, b in enumerate(best):
            shown = "-" if b is None else (f"{b * 100:.1f}%" if self.objective in FRACTIONS else f"{b:.1f}")
            span = f"{edges[i]:.2g} mJ" if n == 1 else f"{edges[i]:.2g}-{edges[i + 1]:.2g} mJ"
            cells.append(f"{span}: {shown}")
        return cells

    def running_line(self) -> str:
        if not self.training:
            return "-"
        parts = []
        for number, (step, steps, line) in sorted(self.training.items())[:3]:
            where = f" (step {step}/{steps})" if steps else ""
            parts.append(f"#{number} {line}{where}")
        return "; ".join(parts)

    def render(self):
        from snnas.nas.search.pareto import pareto_mask

        table = Table.grid(padding=(0, 2))
        table.add_row("training", self.running_line())
        front = sum(pareto_mask([p[0] for p in self.points], [p[1] for p in self.points])) if self.points else 0
        table.add_row("front", f"{front} of {len(self.points)} complete, {self.failed} failed, {self.pruned} pruned")
        bands = self.bands()
        if bands:
            table.add_row(f"best {NAMES.get(self.objective, self.objective)} by energy", "  ".join(bands))
        return Group(self.progress, table)

    def refresh(self, study, workers=None) -> None:
        """Rebuild the display from the storage (several workers: trials are not ours to see finish),
        and the training steps from the workers' shared progress."""
        from optuna.trial import TrialState

        from snnas.nas.search.workers import counts_toward_budget

        trials = study.get_trials(deepcopy=False)
        self.points = [(t.values[0], t.values[1]) for t in trials if t.values]
        self.failed = sum(t.state == TrialState.FAIL and counts_toward_budget(t) for t in trials)
        self.pruned = sum(t.state == TrialState.PRUNED for t in trials)
        lines = {t.number: t.user_attrs["arch"] for t in trials if t.state == TrialState.RUNNING and "arch" in t.user_attrs}
        steps = {number: (step, total) for number, step, total in (workers.training() if workers else [])}
        from snnas.nas.models.arch import ArchConfig

        self.training = {n: (*steps.get(n, (0, 0)), _arch_line(ArchConfig.from_dict(a))) for n, a in lines.items()}
        self._set_done(sum(counts_toward_budget(t) for t in trials))

    def log_line(self, event) -> None:
        """Not a terminal (a log file, CI): one plain line per finished trial instead of a live display."""
        if event.state in ("started", "step"):
            return
        elapsed = time.perf_counter() - self.start
        eta = self.eta_s(event.done)
        if event.state == "complete":
            shown = f"{event.accuracy * 100:.2f}%" if self.objective in FRACTIONS else f"{event.accuracy:.4g}"
            outcome = f"{NAMES.get(self.objective, self.objective)} {shown}, {event.energy_mj:.4g} mJ"
        else:  # failed or pruned: no objective to show
            outcome = f"{event.state}: {event.reason}"
        err_console.print(f"trial {event.number} ({event.done}/{self.total}, elapsed {elapsed / 60:.1f} min, "
                          f"ETA {'-' if eta is None else f'{eta / 60:.1f} min'}): {_arch_line(event.arch)}: {outcome}",
                          soft_wrap=True, highlight=False)

    def update(self, event) -> None:
        if event.state in ("started", "step"):
            self.training = {event.number: (event.step, event.steps, _arch_line(event.arch))}
            return
        self.training.pop(event.number, None)
        if event.state == "complete":
            self.points.append((event.accuracy, event.energy_mj))
            self._set_done(event.done)
        elif event.state == "failed":
            self.failed += 1
            self._set_done(event.done)
        elif event.state == "pruned":
            self.pruned += 1


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _Plain:
    """Stands in for rich's Live when stderr is not a terminal (a log file, CI): plain lines only.

    One worker logs a line per trial (``_Display.log_line``); with several workers, whose trials
    this process does not see finish, a line whenever the number of evaluated trials moves."""

    def __init__(self, display, *, polling: bool) -> None:
        self.display = display
        self.polling = polling
        self.shown = int(display.progress.tasks[0].completed)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def update(self, renderable) -> None:
        done = int(self.display.progress.tasks[0].completed)
        if self.polling and done != self.shown:
            self.shown = done
            elapsed = (time.perf_counter() - self.display.start) / 60
            eta = self.display.eta_s(done)
            err_console.print(f"{done}/{self.display.total} trials evaluated (elapsed {elapsed:.1f} min, ETA "
                              f"{'-' if eta is None else f'{eta / 60:.1f} min'}); running: "
                              f"{self.display.running_line()}", soft_wrap=True, highlight=False)


def _run_local_workers(settings, space, split, n, study, display, live) -> bool:
    """Start n worker processes and show their progress from the storage until they finish;
    False when one of them ended abnormally."""
    from snnas.nas.search.local import start_local_workers

    workers = start_local_workers(settings, space, split, n)
    procs = workers.procs
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            display.refresh(study, workers)
            live.update(display.render())
    except KeyboardInterrupt as exc:
        if not isinstance(exc, _Terminated):  # Ctrl-C at a terminal reaches the workers too: let them finish
            deadline = time.monotonic() + 5.0
            for p in procs:
                p.join(timeout=max(0.0, deadline - time.monotonic()))
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: the worker fails its running trial as interrupted and queues it again
        for p in procs:
            p.join(timeout=60)
        raise
    display.refresh(study, workers)
    live.update(display.render())
    crashed = [p.name for p in procs if p.exitcode not in (0, None)]
    if crashed:
        err_console.print(f"[yellow]warning:[/] {', '.join(crashed)} ended abnormally; rerun the command to "
                          "finish the budget (their trials are retried)")
    return not crashed


def search(
    budget: int = typer.Option(200, "--budget", "-n", min=1, max=1_000_000, help="Evaluated trials in the whole study (resumes)."),
    space_file: Optional[Path] = typer.Option(None, "--space", show_default=False,
                                              help="Search space file (default: the space shipped with snnas; "
                                                   "`snnas space show` prints it)."),
    study: str = typer.Option("snnas", "--study", help="Study name: results go to OUT/STUDY."),
    out: Path = typer.Option(Path("results"), "--out", help="Output folder."),
    data: str = typer.Option("digits", "--data", help="digits (embedded), cifar10:DIR, cifar100:DIR, folder:DIR, "
                                                     "DIR or FILE.npz."),
    sampler: str = typer.Option("tpe", "--sampler", help="tpe, nsga2 or random."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Sampler seed (the proxy's init and batch seed too)."),
    proxy: str = typer.Option("train", "--proxy", help="train (short training) or sahd (training-free)."),
    profile: list[str] = typer.Option(["45nm-fp32"], "--profile", "-p", help="Energy profiles; the first is the "
                                                                             "objective. Repeatable."),
    convention: str = typer.Option("snnas", "--convention", help="Energy counting convention."),
    energy_model: str = typer.Option("arithmetic", "--energy-model",
                                     help="The energy objective: arithmetic (operations only) or lemaire (Lemaire "
                                          "et al.'s memory-aware model: operations, addressing and memory traffic; "
                                          "docs: The energy model). Each trial records both."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Database URL (default: a journal file in OUT/STUDY)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    max_params: Optional[int] = typer.Option(None, "--max-params", min=1, max=10**13, help="Hard limit, pruned before training."),
    max_energy: Optional[float] = typer.Option(None, "--max-energy", help="Hard limit in mJ per sample (constraint)."),
    refine: int = typer.Option(0, "--refine", min=0, max=10_000, help="Re-train K front members with --refine-steps; their "
                                                          "weights are kept in OUT/STUDY/refined/trial-N.pt."),
    refine_steps: int = typer.Option(400, "--refine-steps", min=1, max=10_000_000, help="Steps for --refine."),
    steps: int = typer.Option(100, "--steps", min=1, max=10_000_000, help="Proxy training steps per run."),
    runs: int = typer.Option(2, "--runs", min=1, max=100, help="Proxy training runs per candidate (seeds --seed, "
                                                               "--seed + 1, ...), averaged."),
    score: str = typer.Option("likelihood", "--score", help="The proxy's objective: likelihood (exp of minus the "
                                                           "mean held-out cross-entropy; ranks best; docs: Benchmarks) "
                                                           "or accuracy (mean held-out accuracy)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, max=1_000_000, help="Proxy batch size."),
    lr: float = typer.Option(1e-2, "--lr", help="Proxy peak learning rate."),
    bn_gain: float = typer.Option(2.0, "--bn-gain", min=0.0, help="Batch-norm scale at the start of proxy "
                                  "training (1 = PyTorch's init; docs: Benchmarks, proxy fidelity)."),
    train_size: int = typer.Option(2000, "--train-size", min=1, max=100_000_000, help="Training images for the proxy."),
    val_size: int = typer.Option(500, "--val-size", min=1, max=100_000_000, help="Held-out images for accuracy and energy."),
    resolution: int = typer.Option(16, "--resolution", min=4, max=4096, help="Image side used during the search."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, show_default=False,
                                          help="Local worker processes sharing the study (default: one per usable "
                                               "CPU core, each with one thread; 1 on a GPU, with SQLite or with "
                                               "--worker-index)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, show_default=False,
                                          help="Torch threads per worker (default: the usable cores shared among "
                                               "the workers). A trial's numbers depend on it (docs: Searching at scale)."),
    worker_index: Optional[int] = typer.Option(None, "--worker-index", min=0,
                                               help="This worker's number when several machines share a "
                                                    "--storage study (seeds its sampler; default: from host and pid)."),
    rungs: Optional[str] = typer.Option(None, "--rungs", show_default=False,
                                        help="Multi-fidelity: proxy training steps of each rung, e.g. 100,300,900. "
                                             "Every candidate trains on the first rung; the best 1/--eta of a rung "
                                             "(Pareto rank in score and energy) go on to the next (docs: Searching). "
                                             "Default: every candidate gets the same proxy (--steps, --runs)."),
    eta: int = typer.Option(3, "--eta", min=2, max=100, help="Multi-fidelity reduction factor (with --rungs)."),
    heartbeat: int = typer.Option(30, "--heartbeat", min=1, max=86_400, help="Database storages: seconds between heartbeats; "
                                                                "a trial silent for twice this is retried."),
) -> None:
    """Search spiking transformers for the accuracy / energy Pareto front; rerun to resume."""
    from snnas.nas.search.proxy import ProxySettings
    from snnas.nas.search.study import SearchSettings

    settings = SearchSettings(study=study, out_dir=out, budget=budget, sampler=sampler, seed=seed, proxy=proxy,
                              profiles=tuple(profile), convention=convention, max_params=max_params,
                              max_energy_mj=max_energy, storage=storage, train_size=train_size, val_size=val_size,
                              resolution=resolution, workers=_default_workers(workers, device, storage, worker_index),
                              threads=threads, heartbeat_s=heartbeat, rungs=_rungs(rungs), eta=eta,
                              energy_model=energy_model,
                              proxy_settings=ProxySettings(steps=steps, batch_size=batch_size, lr=lr,
                                                           bn_init_gain=bn_gain, seed=seed, runs=runs, score=score))
    space, dataset, split, dev = _prepare(settings, space_file, data, device, worker_index)
    run_info = _run_info(settings, space, dataset, split, dev, data)
    signal.signal(signal.SIGTERM, _terminate)  # a batch scheduler's stop: like Ctrl-C, results written
    from snnas.nas.search.study import open_study
    from snnas.nas.search.workers import worker_info

    me = worker_info(seed, 0 if storage is None and worker_index is None else worker_index)
    study_obj = open_study(settings, space, split, worker=me)
    start = time.perf_counter()
    study_obj, interrupted = _run(settings, space, split, dev, study_obj, me)
    err_console.print()
    if refine and not interrupted:
        from snnas.nas.report.tables import front_spread, trials_frame
        from snnas.nas.search.study import refine_front

        err_console.print(f"re-training {refine} front members for {refine_steps} steps ...")
        refined = refine_front(study_obj, settings, split, picks=front_spread(trials_frame(study_obj), refine),
                               steps=refine_steps, device=dev, data_spec=data,
                               on_progress=lambda i, n: err_console.print(f"  re-trained {i} of {n}", highlight=False))
        for entry in refined:
            before = "-" if entry["proxy_accuracy"] is None else f"{entry['proxy_accuracy'] * 100:.1f}%"
            err_console.print(f"  trial {entry['trial']}: proxy accuracy {before} -> "
                              f"{entry['refined_accuracy'] * 100:.1f}% after {entry['steps']} steps; {entry['model']}",
                              highlight=False)
    _finish(settings, study_obj, run_info, start, interrupted)


def _rungs(text: str | None) -> tuple[int, ...] | None:
    from snnas.nas.search.rungs import parse_rungs

    if text is None:
        return None
    try:
        return parse_rungs(text)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _default_workers(workers, device: str, storage, worker_index) -> int:
    """Explicit --workers, else one worker per usable core where several can share the study."""
    if workers is not None:
        return workers
    import torch

    from snnas.nas.search.workers import usable_cores

    on_gpu = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if on_gpu or worker_index is not None or (storage or "").startswith("sqlite"):
        return 1
    return usable_cores()


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is, with its own exit code."""


def _terminate(signum, frame) -> None:
    raise _Terminated


def _prepare(settings, space_file, data, device, worker_index):
    """Every input read and checked before anything is written: (space, dataset, split, device)."""
    from snnas.nas.data import ProxySplit
    from snnas.nas.search.space import DataShape, SearchSpace, default_space_path
    from snnas.nas.search.study import check_settings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = SearchSpace.from_yaml(space_file or default_space_path())
    dev = resolve_device(device)
    if settings.workers == 1 and settings.threads:
        import torch

        torch.set_num_threads(settings.threads)
    if settings.workers > 1 and dev.type == "cuda":
        raise CliError("--workers N runs CPU processes; on a GPU run one worker per device instead")
    if settings.workers > 1 and worker_index is not None:
        raise CliError("--worker-index names one worker; it cannot be combined with --workers")
    _check_machine_bounds(settings)
    dataset = load_data(data)
    _check_split_memory(settings, dataset)
    split = ProxySplit.make(dataset, train_size=settings.train_size, val_size=settings.val_size,
                            resolution=settings.resolution, seed=settings.seed)
    check_settings(settings, space, DataShape(split.resolution, split.channels, split.num_classes, split.time_steps))
    try:
        settings.study_dir.mkdir(parents=True, exist_ok=True)
        import tempfile

        with tempfile.NamedTemporaryFile(dir=settings.study_dir, prefix=".write-test-"):
            pass  # unique per process: workers sharing the folder must not race on one probe
    except OSError as exc:
        raise CliError(f"{settings.study_dir}: cannot write results ({exc.strerror or exc})") from None
    return space, dataset, split, dev


def _check_machine_bounds(settings) -> None:
    """--workers and --threads within this machine's cores (a million threads crash torch)."""
    cores = os.cpu_count() or 1
    for flag, value in (("--workers", settings.workers), ("--threads", settings.threads)):
        if value is not None and value > cores:
            raise CliError(f"{flag} {value}: this machine has {cores} CPU core(s); use at most {cores}")


def _check_split_memory(settings, dataset) -> None:
    """The proxy's images at --resolution must fit in memory (with room left for the candidates)."""
    from snnas.nas.models.footprint import MEMORY_ENV, memory_limit_bytes

    n = min(settings.train_size + settings.val_size, len(dataset.labels))
    frames = dataset.time_steps or 1
    need = n * frames * dataset.channels * settings.resolution ** 2 * 4  # float32 [N, (T,) C, H, W]
    limit = memory_limit_bytes() // 2
    if need > limit:
        raise CliError(f"--resolution {settings.resolution}: {n:,} images of {dataset.channels}x{settings.resolution}"
                       f"x{settings.resolution}{f' x {frames} frames' if frames > 1 else ''} take "
                       f"{need / 2**30:,.1f} GiB as float32, more than half the {2 * limit / 2**30:,.1f} GiB this "
                       f"machine has available (lower --resolution or --train-size, or set {MEMORY_ENV})")


def _run_info(settings, space, dataset, split, dev, data) -> dict:
    import dataclasses

    from snnas.nas.search.study import redact

    arguments = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(settings).items()
                 if k != "proxy_settings"}
    arguments["storage"] = redact(settings.storage, settings.storage) if settings.storage else None
    arguments |= {"proxy_settings": dataclasses.asdict(settings.proxy_settings), "space_file": space.source,
                  "data": data}
    return {"versions": _versions(), "seed": settings.seed, "device": str(dev), "arguments": arguments,
            "data": {"spec": data, "fingerprint": dataset.fingerprint, "split_fingerprint": split.fingerprint,
                     "samples": len(dataset.labels), "classes": dataset.num_classes},
            "space": {"file": space.source, "sha256_16": space.digest},
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _run(settings, space, split, dev, study_obj, me):
    """The trials, shown live on a terminal or as log lines otherwise: (study, interrupted)."""
    from snnas.nas.search.study import evaluated_count, run_search

    display = _Display(settings.budget, min(evaluated_count(study_obj), settings.budget),
                       settings.objective_name)
    display.seed(study_obj)
    try:
        live_display = Live(display.render(), console=err_console, refresh_per_second=4, transient=False) \
            if err_console.is_terminal else _Plain(display, polling=settings.workers > 1)
        with live_display as live:
            if settings.workers > 1:
                if not _run_local_workers(settings, space, split, settings.workers, study_obj, display, live):
                    return study_obj, "crashed"
            else:
                def on_event(event):
                    display.update(event)
                    if isinstance(live, _Plain):
                        display.log_line(event)
                    elif event.state != "step" or event.step % 5 == 0 or event.step == event.steps:
                        live.update(display.render())

                study_obj = run_search(settings, space, split, device=dev, on_event=on_event, study=study_obj,
                                       worker=me)
    except _Terminated:
        return study_obj, "terminated"
    except KeyboardInterrupt:
        return study_obj, "interrupted"
    except OSError as exc:
        raise _storage_error(settings, exc) from None
    return study_obj, None


def _storage_error(settings, exc: OSError) -> CliError:
    if exc.errno == errno.ENOSPC:
        return CliError(f"{settings.study_dir}: no space left on device; free some space and rerun the same command "
                        "to resume (finished trials are kept in the study)")
    return CliError(f"{settings.study_dir}: cannot write the study ({exc.strerror or exc})")


def _finish(settings, study_obj, run_info, start, interrupted) -> None:
    """Reports and run.json, written whatever happened; the exit code says how the run ended."""
    from snnas.nas.report.tables import write_reports

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second stop must not cut the writing short
    run_info["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run_info["wall_time_s"] = round(time.perf_counter() - start, 1)
    run_info["interrupted"] = bool(interrupted)
    try:
        summary = write_reports(study_obj, settings.study_dir, data=run_info["data"]["spec"])
        run_info["trials_after"] = summary.counts
        _append_run(settings.study_dir / "run.json", run_info)
    except OSError as exc:
        raise _storage_error(settings, exc) from None
    best = "-" if summary.best is None else (f"{summary.best * 100:.1f}%" if summary.objective in FRACTIONS
                                             else f"{summary.best:.4g}")
    console.print(f"{settings.study_dir}: {summary.line(settings.budget)}; front {summary.front_size} "
                  f"(best {NAMES.get(summary.objective, summary.objective)} {best}); hypervolume "
                  f"{summary.hypervolume:.4g}; {run_info['wall_time_s'] / 60:.1f} min; wrote trials.csv, pareto.csv, "
                  "pareto.png/.pdf/.svg, summary.json, run.json", soft_wrap=True, highlight=False)
    if interrupted == "crashed":  # the workers' warning said so: not every trial of the budget was run
        raise typer.Exit(1)
    if interrupted:
        err_console.print(f"{interrupted}: the results so far are written; rerun the same command to resume",
                          highlight=False)
        raise typer.Exit(143 if interrupted == "terminated" else 130)


def _append_run(path: Path, run_info: dict) -> None:
    """run.json describes the latest invocation at its top level (as it always has) and keeps every
    invocation of the study, this one last, under ``history``."""
    from snnas.nas.files import atomic_write

    runs = []
    try:
        old = json.loads(path.read_text())
        if isinstance(old, dict) and isinstance(old.get("history"), list):
            runs = old["history"]
        elif isinstance(old, dict) and old:  # a run.json written before the history was kept
            runs = [old]
    except (OSError, ValueError):
        pass  # none yet, or unreadable: start the history here
    runs.append(run_info)
    atomic_write(path, json.dumps({**run_info, "history": runs}, indent=2))
