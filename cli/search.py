"""``snnas search``: the main job. Searches the space for the accuracy / energy trade-off."""

from __future__ import annotations

import json
import math
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from cli.common import CliError, console, err_console, resolve_device


def _versions() -> dict:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for pkg in ("snnas", "torch", "optuna", "spikingjelly", "numpy", "pandas"):
        try:
            out[pkg] = version(pkg)
        except Exception:  # a package installed oddly must not stop the run
            out[pkg] = "unknown"
    return out


def _arch_line(arch) -> str:
    return (f"{'/'.join(arch.attention)} T={arch.time_steps} dims {'-'.join(map(str, arch.dims))} "
            f"depths {'-'.join(map(str, arch.depths))} {arch.stem} {arch.residual} {arch.neuron} {arch.mlp}")


class _Display:
    """Live progress: trials done / budget, elapsed and ETA, current candidate, front, best per band."""

    def __init__(self, budget: int, done: int, objective: str) -> None:
        self.progress = Progress(TextColumn("[bold]search"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("ETA"), TimeRemainingColumn(), console=err_console)
        self.task = self.progress.add_task("trials", total=budget, completed=done)
        self.current = "-"
        self.points: list[tuple[float, float]] = []
        self.objective = objective
        self.failed = 0
        self.pruned = 0

    def seed(self, study) -> None:
        for t in study.trials:
            if t.values:
                self.points.append((t.values[0], t.values[1]))

    def render(self):
        from nas.pareto import pareto_mask

        table = Table.grid(padding=(0, 2))
        table.add_row("candidate", self.current)
        front = sum(pareto_mask([p[0] for p in self.points], [p[1] for p in self.points])) if self.points else 0
        table.add_row("front", f"{front} of {len(self.points)} complete, {self.failed} failed, {self.pruned} pruned")
        if self.points:
            energies = sorted(e for _, e in self.points)
            lo, hi = math.log10(energies[0]), math.log10(energies[-1]) + 1e-9
            edges = [10 ** (lo + (hi - lo) * i / 4) for i in range(5)]
            cells = []
            for a, b in zip(edges, edges[1:]):
                best = [o for o, e in self.points if a <= e <= b]
                shown = f"{max(best) * 100:.1f}%" if best and self.objective == "accuracy" else \
                    (f"{max(best):.1f}" if best else "-")
                cells.append(f"{a:.2g}-{b:.2g} mJ: {shown}")
            table.add_row(f"best {self.objective} by energy", "  ".join(cells))
        return Group(self.progress, table)

    def update(self, event) -> None:
        if event.state == "started":
            self.current = f"#{event.number} {_arch_line(event.arch)}"
        elif event.state == "complete":
            self.points.append((event.accuracy, event.energy_mj))
            self.progress.update(self.task, completed=event.done)
        elif event.state == "failed":
            self.failed += 1
            self.progress.update(self.task, completed=event.done)
        elif event.state == "pruned":
            self.pruned += 1


def search(
    budget: int = typer.Option(200, "--budget", "-n", min=1, help="Evaluated trials in the whole study (resumes)."),
    space_file: Path = typer.Option(Path("space.yaml"), "--space", help="Search space file."),
    study: str = typer.Option("snnas", "--study", help="Study name: results go to OUT/STUDY."),
    out: Path = typer.Option(Path("results"), "--out", help="Output folder."),
    data: str = typer.Option("digits", "--data", help="digits (embedded), cifar10:DIR, cifar100:DIR, folder:DIR, "
                                                     "DIR or FILE.npz."),
    sampler: str = typer.Option("tpe", "--sampler", help="tpe, nsga2 or random."),
    seed: int = typer.Option(0, "--seed", help="Sampler seed (the proxy's init and batch seed too)."),
    proxy: str = typer.Option("train", "--proxy", help="train (short training) or sahd (training-free)."),
    profile: list[str] = typer.Option(["45nm-fp32"], "--profile", "-p", help="Energy profiles; the first is the "
                                                                             "objective. Repeatable."),
    convention: str = typer.Option("snnas", "--convention", help="Energy counting convention."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Database URL (default: a journal file in OUT/STUDY)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    max_params: Optional[int] = typer.Option(None, "--max-params", min=1, help="Hard limit, pruned before training."),
    max_energy: Optional[float] = typer.Option(None, "--max-energy", help="Hard limit in mJ per sample (constraint)."),
    refine: int = typer.Option(0, "--refine", min=0, help="Re-train K front members with --refine-steps."),
    refine_steps: int = typer.Option(400, "--refine-steps", min=1, help="Steps for --refine."),
    steps: int = typer.Option(100, "--steps", min=1, help="Proxy training steps per candidate."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Proxy batch size."),
    lr: float = typer.Option(1e-2, "--lr", help="Proxy peak learning rate."),
    train_size: int = typer.Option(2000, "--train-size", min=1, help="Training images for the proxy."),
    val_size: int = typer.Option(500, "--val-size", min=1, help="Held-out images for accuracy and energy."),
    resolution: int = typer.Option(16, "--resolution", min=4, help="Image side used during the search."),
) -> None:
    """Search spiking transformers for the accuracy / energy Pareto front; rerun to resume."""
    import dataclasses

    from nas.data import ProxySplit, load_dataset
    from nas.proxy import ProxySettings
    from nas.report import write_reports
    from nas.space import SearchSpace
    from nas.study import SearchSettings, evaluated_count, open_study, refine_front, run_search

    from energy.conventions import get_convention
    from energy.profile import load_profile

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    get_convention(convention)
    for p in profile:
        load_profile(p)
    space = SearchSpace.from_yaml(space_file)
    dev = resolve_device(device)
    dataset = load_dataset(data)
    split = ProxySplit.make(dataset, train_size=train_size, val_size=val_size, resolution=resolution, seed=seed)
    settings = SearchSettings(study=study, out_dir=out, budget=budget, sampler=sampler, seed=seed, proxy=proxy,
                              profiles=tuple(profile), convention=convention, max_params=max_params,
                              max_energy_mj=max_energy, storage=storage, train_size=train_size, val_size=val_size,
                              resolution=resolution,
                              proxy_settings=ProxySettings(steps=steps, batch_size=batch_size, lr=lr, seed=seed))
    try:
        settings.study_dir.mkdir(parents=True, exist_ok=True)
        probe = settings.study_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise CliError(f"{settings.study_dir}: cannot write results ({exc.strerror or exc})") from None
    run_info = {"versions": _versions(), "seed": seed, "device": str(dev),
                "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(settings).items()
                              if k != "proxy_settings"} | {"proxy_settings": dataclasses.asdict(settings.proxy_settings),
                                                           "space_file": str(space_file), "data": data},
                "data": {"spec": data, "fingerprint": dataset.fingerprint, "split_fingerprint": split.fingerprint,
                         "samples": len(dataset.labels), "classes": dataset.num_classes},
                "space": {"file": str(space_file), "sha256_16": space.digest},
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    study_obj = open_study(settings, space, split)
    display = _Display(budget, min(evaluated_count(study_obj), budget),
                       "accuracy" if proxy == "train" else "SAHD score")
    display.seed(study_obj)
    start = time.perf_counter()
    interrupted = False
    try:
        with Live(display.render(), console=err_console, refresh_per_second=4, transient=False) as live:
            def on_event(event):
                display.update(event)
                live.update(display.render())

            study_obj = run_search(settings, space, split, device=dev, on_event=on_event, study=study_obj)
    except KeyboardInterrupt:
        interrupted = True
    err_console.print()
    if refine and not interrupted:
        err_console.print(f"re-training {refine} front members for {refine_steps} steps ...")
        refine_front(study_obj, settings, split, k=refine, steps=refine_steps, device=dev)
    summary = write_reports(study_obj, settings.study_dir)
    run_info["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run_info["wall_time_s"] = round(time.perf_counter() - start, 1)
    run_info["interrupted"] = interrupted
    (settings.study_dir / "run.json").write_text(json.dumps(run_info, indent=2))
    console.print(f"{settings.study_dir}: {summary.counts} trials; front {summary.front_size}; "
                  f"hypervolume {summary.hypervolume:.4g} (reference {summary.reference}); "
                  f"trials.csv, pareto.csv, pareto.png/.pdf/.svg, summary.json, run.json")
    if interrupted:
        err_console.print("interrupted: the results so far are written; rerun the same command to resume")
        raise typer.Exit(130)
