"""``snnas train ARCH`` and ``snnas evaluate CHECKPOINT``: from a chosen architecture to a trained model and its numbers."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from snnas.cli.common import CliError, OutputFormat, console, err_console, load_data, resolve_device, write_text_atomic


LAUNCHED_ENV = "SNNAS_LAUNCHED"  # set by --nproc-per-node for the ranks it starts
_QUIET = {"on": False}  # ranks other than 0 of a distributed run: rank 0 says everything once


def _note(text: str) -> None:
    if not _QUIET["on"]:
        err_console.print(f"note: {text}", markup=False, highlight=False)


class _Stopped(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is, with its own exit code."""


def _stop(signum, frame) -> None:
    raise _Stopped


def _default_out(source) -> Path:
    if source.kind == "trial":
        return source.study_dir / "trained" / f"trial-{source.trial}"
    return Path("results") / "trained" / source.label.replace("#", "-")


def _load_data(spec: str, *, what: str):
    from snnas.nas.data import DataError

    try:
        return load_data(spec)
    except DataError as exc:
        raise CliError(f"{what} {exc}") from None


class _TrainDisplay:
    """A progress bar over every training step (loss, accuracy, ETA) on a terminal; a line per epoch otherwise."""

    def __init__(self, epochs: int, done: int, live: bool) -> None:
        self.epochs, self.live, self.start, self.first = epochs, live, time.perf_counter(), done
        self.best = None
        self.progress = Progress(TextColumn("[bold]epoch {task.fields[epoch]}/" + str(epochs)), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("loss {task.fields[loss]} acc {task.fields[acc]}"
                                                                  "  test {task.fields[test]}"),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err_console)
        self.task = None
        self.done = done

    def __enter__(self):
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.progress.stop()

    def step(self, i: int, steps: int, loss: float, acc: float) -> None:
        if not self.live:
            return
        if self.task is None:
            self.task = self.progress.add_task("train", total=steps * self.epochs, completed=steps * self.done,
                                               epoch=self.done + 1, loss="-", acc="-", test="-")
        self.progress.update(self.task, completed=steps * self.done + i, epoch=self.done + 1,
                             loss=f"{loss:.3f}", acc=f"{acc * 100:.1f}%")

    def epoch(self, m) -> None:
        self.done = m.epoch
        if _QUIET["on"]:
            return
        self.best = max(self.best or 0.0, m.test_accuracy)
        if self.live and self.task is not None:
            self.progress.update(self.task, test=f"{m.test_accuracy * 100:.1f}% (best {self.best * 100:.1f}%)")
            return
        elapsed = time.perf_counter() - self.start
        eta = elapsed / max(1, m.epoch - self.first) * (self.epochs - m.epoch)
        err_console.print(f"epoch {m.epoch}/{self.epochs}: loss {m.train_loss:.4f}, train accuracy "
                          f"{m.train_accuracy * 100:.1f}%, test accuracy {m.test_accuracy * 100:.2f}% "
                          f"(best {self.best * 100:.2f}%), lr {m.lr:.3g}, {m.time_s:.1f} s, ETA {eta / 60:.1f} min",
                          markup=False, highlight=False)


def train(
    arch_ref: str = typer.Argument(..., metavar="ARCH", help="A zoo name, a study's trial (results/<study>#<trial>), "
                                                             "an architecture file (.yaml/.json, see `snnas arch "
                                                             "show`) or an snnas model file (its architecture; "
                                                             "trained from scratch)."),
    data: Optional[str] = typer.Option(None, "--data", show_default=False,
                                       help="Training data, as for snnas search (default: the data the study "
                                            "searched on, else digits)."),
    epochs: int = typer.Option(100, "--epochs", "-e", min=1, max=100_000, help="Training epochs."),
    out: Optional[Path] = typer.Option(None, "--out", show_default=False,
                                       help="Folder for best.pt, last.pt, metrics.csv, evaluation.json (default: "
                                            "STUDY_DIR/trained/trial-N for a trial, else results/trained/NAME)."),
    batch_size: int = typer.Option(128, "--batch-size", min=1, max=1_000_000, help="Images per step."),
    lr: float = typer.Option(5e-4, "--lr", min=1e-12, max=10.0, help="AdamW peak learning rate."),
    weight_decay: float = typer.Option(0.06, "--weight-decay", min=0.0, max=10.0, help="AdamW weight decay."),
    warmup: int = typer.Option(20, "--warmup-epochs", min=0, help="Linear warm-up epochs (at most a tenth of --epochs)."),
    smoothing: float = typer.Option(0.1, "--label-smoothing", min=0.0, max=0.99, help="Label smoothing."),
    mixup: float = typer.Option(0.0, "--mixup", min=0.0, max=100.0, help="Mixup Beta(a, a) parameter; 0 = off."),
    cutmix: float = typer.Option(0.0, "--cutmix", min=0.0, max=100.0, help="CutMix Beta(a, a) parameter; 0 = off."),
    flip: Optional[bool] = typer.Option(None, "--flip/--no-flip", show_default=False,
                                        help="Horizontal flips (default: on, off for digits and gestures)."),
    event_aug: Optional[bool] = typer.Option(None, "--event-aug/--no-event-aug", show_default=False,
                                             help="Event data: Spikformer's CIFAR10-DVS policy, one of shear, "
                                                  "translation, rotation, cutout or nothing per sample (default: on "
                                                  "for event data)."),
    resolution: Optional[int] = typer.Option(None, "--resolution", min=4, max=4096, show_default=False,
                                             help="Image side (default: the data's own, or the next side the "
                                                  "architecture can take)."),
    time_steps: Optional[int] = typer.Option(None, "--time-steps", "-T", min=1, max=1024, show_default=False,
                                             help="Time steps T (default: the architecture's)."),
    seed: int = typer.Option(0, "--seed", help="Initialisation, batch order and augmentation seed."),
    profile: list[str] = typer.Option(["45nm-fp32"], "--profile", "-p", help="Energy profiles of the final "
                                                                             "evaluation; repeatable."),
    convention: str = typer.Option("snnas", "--convention", help="Energy counting convention."),
    energy_samples: int = typer.Option(128, "--energy-samples", min=1, max=100_000,
                                       help="Held-out images the trained model's energy is counted on."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Database URL of the study, for a trial reference."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (mixed precision on CUDA)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, max=4096, show_default=False,
                                          help="Torch CPU threads (default: torch's)."),
    weights: Optional[Path] = typer.Option(None, "--weights", show_default=False,
                                           help="Fine-tune from an official checkpoint (Spikformer, Spikingformer, "
                                                "Spike-driven Transformer, QKFormer, SpikingResformer) of ARCH's "
                                                "family, read as tensors only; the classifier starts afresh when "
                                                "the data has another class count."),
    nproc_per_node: Optional[int] = typer.Option(None, "--nproc-per-node", min=1, max=1024, show_default=False,
                                                 help="Train on N processes of this machine (one per GPU on "
                                                      "CUDA) with DistributedDataParallel: starts torchrun "
                                                      "--standalone; --batch-size stays the global batch."),
    sync_bn: bool = typer.Option(True, "--sync-bn/--no-sync-bn", help="Several processes: batch norm "
                                                                      "statistics over the global batch (off: "
                                                                      "over each process's share)."),
) -> None:
    """Train an architecture fully (the seed papers' recipe); rerun the same command to resume after a stop."""
    import torch
    from snnas.energy.conventions import get_convention
    from snnas.energy.profile import load_profile
    from snnas.nas.train.distributed import from_env
    from snnas.nas.train.training import Recipe

    get_convention(convention)
    profiles = [load_profile(p) for p in profile]
    dist = from_env()
    if nproc_per_node is not None:
        _launch(nproc_per_node, dist, threads)
    _QUIET["on"] = dist is not None and not dist.main
    try:
        source, spec, dataset, arch = _what_to_train(arch_ref, storage, data, time_steps, resolution, batch_size)
        if threads:
            torch.set_num_threads(threads)
        dev = resolve_device(device)
        recipe = Recipe(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                        warmup_epochs=warmup, label_smoothing=smoothing, flip=flip, mixup=mixup, cutmix=cutmix,
                        seed=seed, event_aug=event_aug, sync_bn=sync_bn)
        folder = out or _default_out(source)
        init = _official_start(weights, source, arch)
        result, dev = _run_training(source, spec, dataset, arch, recipe, folder, dev, init, dist)
    except (CliError, ValueError):
        if _QUIET["on"]:
            raise typer.Exit(2)  # rank 0 meets the same error and says it
        raise
    if dist is None or dist.main:
        _report_trained(source, spec, dataset, result, folder, profiles=profiles, convention=convention,
                        samples=energy_samples, epochs=epochs, device=dev)


def _what_to_train(arch_ref, storage, data, time_steps, resolution, batch_size):
    """(source, data spec, dataset, architecture fitted to the data), checked to fit in memory."""
    from snnas.nas.models.footprint import check_fits
    from snnas.nas.report.archref import resolve_arch
    from snnas.nas.train.training import fit_arch

    source = resolve_arch(arch_ref, storage=storage)
    spec = data or source.data_spec or "digits"
    if data is None and source.data_spec:
        _note(f"training on {spec}, the data {source.label} was searched on (--data to change)")
    dataset = _load_data(spec, what="--data")
    arch = source.arch if time_steps is None else source.arch.replace(time_steps=time_steps)
    arch, notes = fit_arch(arch, dataset, resolution)
    for text in notes:
        _note(text)
    check_fits(arch, batch_size=min(batch_size, len(dataset.labels)), training=True,
               what=f"{source.label} at T={arch.time_steps}, {arch.img_size}x{arch.img_size}")
    return source, spec, dataset, arch


def _official_start(weights: Optional[Path], source, arch) -> dict | None:
    """The state dict a fine-tuning starts from: ``weights`` mapped into ``arch`` (None without --weights)."""
    if weights is None:
        return None
    from snnas.nas.models import build_model
    from snnas.nas.models.weights import WeightsError, load_official

    model = build_model(arch)
    head = arch.num_classes == source.arch.num_classes
    try:
        info = load_official(model, weights, head=head)
    except WeightsError as exc:
        raise CliError(str(exc)) from None
    _note(f"starting from {weights}: {info.tensors} tensors of the official {info.family} checkpoint"
          + ("" if head else f"; the classifier starts afresh ({arch.num_classes} classes, the checkpoint's "
                             f"{source.arch.num_classes})"))
    return model.state_dict()


def _run_training(source, spec, dataset, arch, recipe, folder: Path, dev, init: dict | None = None, dist=None):
    """``train_model`` with a progress display (rank 0's); a stop keeps the epochs done and exits
    130 / 143. Under torchrun this rank joins the process group first. Returns (result, device)."""
    from snnas.nas.train import distributed
    from snnas.nas.train.training import train_model

    done = _epochs_done(folder)
    signal.signal(signal.SIGTERM, _stop)
    display = _TrainDisplay(recipe.epochs, done, err_console.is_terminal and not _QUIET["on"])
    if dist is not None:
        try:
            dev = distributed.start(dist, dev)
        except distributed.DistError as exc:  # this rank's own trouble: said by this rank
            print(f"snnas: error: rank {dist.rank}: {exc}", file=sys.stderr)
            raise typer.Exit(2)
    _note_world_change(folder, dist.world if dist else 1, recipe)
    where = f"{dist.world} processes ({dev.type}, {'NCCL' if dev.type == 'cuda' else 'gloo'})" if dist else dev
    if not _QUIET["on"]:
        err_console.print(f"training {source.label} ({arch.img_size}x{arch.img_size}, T={arch.time_steps}) on {spec} "
                          f"for {recipe.epochs} epochs on {where} into {folder}"
                          + (f", resuming after epoch {done}" if done else ""), markup=False, highlight=False)
    try:
        with display:
            result = train_model(arch, dataset, recipe, folder, device=dev, on_step=display.step,
                                 on_epoch=display.epoch, info={"data_spec": spec, "source": source.provenance()},
                                 init=init, dist=dist)
    except KeyboardInterrupt as exc:
        if not _QUIET["on"]:
            err_console.print(f"{'terminated' if isinstance(exc, _Stopped) else 'interrupted'}: "
                              f"{_epochs_done(folder)} of {recipe.epochs} epochs kept in {folder / 'last.pt'}; "
                              "rerun the same command to resume", markup=False, highlight=False)
        raise typer.Exit(143 if isinstance(exc, _Stopped) else 130)
    except OSError as exc:
        raise CliError(f"{folder}: cannot write the checkpoints ({exc.strerror or exc})") from None
    except RuntimeError as exc:
        if dist is None:
            raise
        _lost_peer(dist, exc, folder)
    finally:
        distributed.stop()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return result, dev


def _lost_peer(dist, exc: RuntimeError, folder: Path) -> None:
    """A collective failed: another rank stopped (killed, out of memory). Under ``--nproc-per-node``
    the launcher names the rank that failed first, so this one exits quietly; under torchrun it says so."""
    import os

    if os.environ.get(LAUNCHED_ENV) == "1":
        raise typer.Exit(1)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    raise CliError(f"rank {dist.rank}: the run lost a process ({first}); {_epochs_done(folder)} epochs are kept in "
                   f"{folder / 'last.pt'}: rerun the same command to resume")


def _note_world_change(folder: Path, world: int, recipe) -> None:
    """One note when a run resumes on another number of processes than it was saved from."""
    meta = _saved_meta(folder)
    saved = meta.get("processes", 1)
    if not meta or saved == world:
        return
    share = f"{recipe.batch_size / world:g} per process instead of {recipe.batch_size / saved:g}"
    same = ("batch norm still over the global batch: the same numbers up to floating-point rounding"
            if recipe.sync_bn or world == 1 else "batch norm statistics now over each process's new share")
    _note(f"resuming a run saved from {saved} process{'es' if saved > 1 else ''} on {world}: the global batch "
          f"stays {recipe.batch_size} images ({share}) and the learning rate stays {recipe.lr:g} (no scaling "
          f"rule applies: the global batch is unchanged); {same}")


def _launch(nproc: int, dist, threads: int | None) -> None:
    """``snnas train --nproc-per-node N``: run this same command on N processes under torchrun's
    launcher (standalone: one machine, a free port); its exit code is the command's."""
    import logging
    import os
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if dist is not None:
        raise CliError(f"--nproc-per-node {nproc}: this process already runs under torchrun "
                       f"(WORLD_SIZE={dist.world}); leave --nproc-per-node out")
    args = _without_nproc(sys.argv[1:])
    if "train" not in args:
        raise CliError("--nproc-per-node: snnas train must be run as a command (snnas train ... or python -m snnas train ...)")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads or max(1, cores // nproc)))
    os.environ[LAUNCHED_ENV] = "1"
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.5)
    try:
        elastic_launch(config, sys.executable)("-m", "snnas", *args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        code = failure.exitcode
        if code in (2, 130, 143):
            raise typer.Exit(code)  # the rank said why (rank 0 for an error in the command)
        how = f"was killed by {failure.signal_name()}" if code < 0 else f"exited with code {code}"
        raise CliError(f"--nproc-per-node {nproc}: rank {rank} {how}; every epoch saved is kept: rerun the same "
                       "command to resume") from None
    raise typer.Exit(0)


def _without_nproc(args: list[str]) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == "--nproc-per-node":
            skip = True
        elif not a.startswith("--nproc-per-node="):
            out.append(a)
    return out


def _report_trained(source, spec, dataset, result, folder: Path, *, profiles, convention, samples, epochs, device):
    """evaluation.json and the firing-rate figure of the best checkpoint, and one summary line."""
    from snnas.nas.train.evaluate import plot_rates

    best = result.best_metrics
    report = _evaluate_file(result.best, dataset, spec, profiles=profiles, convention=convention, samples=samples,
                            device=device)
    report["source"] = source.provenance()
    report["best_epoch"], report["epochs"] = best.epoch, epochs
    write_text_atomic(folder / "evaluation.json", json.dumps(report, indent=2))
    plot_rates(report, folder / "firing_rates", title=f"{source.label}: firing rate per layer on {dataset.name}")
    first = profiles[0].name
    energy = report["energy"][first]
    console.print(f"{folder}: best epoch {best.epoch} of {epochs}, test accuracy {best.test_accuracy * 100:.2f}% "
                  f"({report['test_images']} held-out images); energy {energy['total_mj']:.4g} mJ per sample "
                  f"({first}, {convention}{'' if energy['complete'] else ', incomplete: a lower bound'}); firing rate "
                  f"{report['firing_rate'] * 100:.1f}%; best.pt, last.pt, metrics.csv, evaluation.json, "
                  "firing_rates.png/.pdf/.svg", soft_wrap=True, highlight=False)


def _epochs_done(folder: Path) -> int:
    return int(_saved_meta(folder).get("epoch", 0))


def _saved_meta(folder: Path) -> dict:
    """The ``meta`` of ``folder/last.pt`` ({} when there is none or it cannot be read)."""
    last = folder / "last.pt"
    if not last.is_file():
        return {}
    try:
        from snnas.energy.untrusted import read_torch_save

        return (read_torch_save(last, origin=str(last)) or {}).get("meta") or {}
    except Exception:  # noqa: BLE001 - train_model itself says what is wrong with the file
        return {}


def _evaluate_file(path: Path, dataset, spec: str, *, profiles, convention: str, samples: int, device) -> dict:
    from snnas.nas.models.checkpoint import load_model_file
    from snnas.nas.train.evaluate import evaluate_model

    model, arch, obj = load_model_file(path)
    try:
        report = evaluate_model(model, arch, dataset, profiles=profiles, convention=convention, samples=samples,
                                device=device)
    except ValueError as exc:
        raise CliError(f"{path}: {exc}") from None
    meta = obj.get("meta") or {}
    trained_on = (meta.get("data") or {}).get("fingerprint")
    report["checkpoint"] = {"path": str(path), "epoch": meta.get("epoch"), "recipe": meta.get("recipe"),
                            "trained_on": meta.get("data")}
    report["data"]["spec"] = spec
    report["data"]["same_as_training"] = None if trained_on is None else trained_on == dataset.fingerprint
    return report


def evaluate(
    checkpoint: Path = typer.Argument(..., help="An snnas model file (best.pt / last.pt from snnas train, or "
                                                "snnas.save_model); with --weights, the architecture: a zoo name, "
                                                "an architecture file or an snnas model file."),
    data: Optional[str] = typer.Option(None, "--data", show_default=False,
                                       help="Data whose held-out images to test on (default: the training data "
                                            "recorded in the checkpoint, else digits)."),
    profile: list[str] = typer.Option(["45nm-fp32"], "--profile", "-p", help="Energy profiles; repeatable."),
    convention: str = typer.Option("snnas", "--convention", help="Energy counting convention."),
    samples: int = typer.Option(128, "--samples", min=1, max=100_000, help="Held-out images to count energy on."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    fmt: OutputFormat = typer.Option(None, "--format", "-f", show_default=False,
                                     help="table or json (default: table, or json with --output)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the JSON report to this file."),
    figure: Optional[Path] = typer.Option(None, "--figure", help="Write a per-layer firing-rate figure: "
                                                                 "FIGURE.png, .pdf and .svg."),
    weights: Optional[Path] = typer.Option(None, "--weights", show_default=False,
                                           help="Evaluate an official checkpoint (Spikformer, Spikingformer, "
                                                "Spike-driven Transformer, QKFormer, SpikingResformer) loaded into "
                                                "CHECKPOINT's architecture; read as tensors only."),
) -> None:
    """Accuracy, per-layer firing rates and energy per profile of a trained model, in one report."""
    from snnas.energy.conventions import get_convention
    from snnas.energy.profile import load_profile

    get_convention(convention)
    profiles = [load_profile(p) for p in profile]
    if fmt is OutputFormat.csv:
        raise CliError("--format csv: evaluate writes table or json (snnas energy writes per-layer CSV)")
    if weights is not None:
        report, label, dataset = _evaluate_official(str(checkpoint), weights, data, profiles=profiles,
                                                    convention=convention, samples=samples, device=device)
    else:
        report, label, dataset = _evaluate_snnas(checkpoint, data, profiles=profiles, convention=convention,
                                                 samples=samples, device=device)
    if figure is not None:
        from snnas.nas.train.evaluate import plot_rates

        paths = plot_rates(report, figure, title=f"{label}: firing rate per layer on {dataset.name}")
        err_console.print(f"wrote {', '.join(map(str, paths))}", markup=False, highlight=False)
    text = json.dumps(report, indent=2)
    if output is not None:
        write_text_atomic(output, text)
        err_console.print(f"wrote {output}", markup=False, highlight=False)
    if fmt is OutputFormat.json or (fmt is None and output is not None):
        if output is None:
            print(text)
        return
    _print_evaluation(report)


def _evaluate_official(arch_ref: str, weights: Path, data: Optional[str], *, profiles, convention, samples, device):
    """(report, label, dataset) of an official checkpoint loaded into the architecture ``arch_ref`` names."""
    from snnas.nas.models import build_model
    from snnas.nas.models.weights import WeightsError, load_official
    from snnas.nas.report.archref import ArchRefError, resolve_arch
    from snnas.nas.train.evaluate import evaluate_model

    try:
        source = resolve_arch(arch_ref)
        model = build_model(source.arch)
        info = load_official(model, weights)
    except (ArchRefError, WeightsError) as exc:
        raise CliError(str(exc)) from None
    spec = data or "digits"
    dataset = _load_data(spec, what="--data")
    try:
        report = evaluate_model(model, source.arch, dataset, profiles=profiles, convention=convention,
                                samples=samples, device=resolve_device(device))
    except ValueError as exc:
        raise CliError(f"{weights}: {exc}") from None
    report["checkpoint"] = {"path": str(weights), "official": info.family, "code": info.code,
                            "architecture": source.provenance()}
    report["data"]["spec"] = spec
    return report, f"{source.label} ({info.family} weights)", dataset


def _evaluate_snnas(checkpoint: Path, data: Optional[str], *, profiles, convention, samples, device):
    """(report, label, dataset) of an snnas model file."""
    from snnas.nas.models.checkpoint import is_snnas_file

    if not checkpoint.is_file():
        from snnas.energy.loading import not_a_file

        raise CliError(not_a_file(checkpoint))
    from snnas.energy.untrusted import read_torch_save

    obj = read_torch_save(checkpoint, origin=str(checkpoint))
    if not is_snnas_file(obj):
        raise CliError(f"{checkpoint}: not an snnas model file; for other models `snnas energy MODEL --data ...` "
                       "counts energy on real images")
    recorded = ((obj.get("meta") or {}).get("data") or {}).get("spec")
    spec = data or recorded or "digits"
    dataset = _load_data(spec, what="--data" if data else f"the training data recorded in {checkpoint}:")
    report = _evaluate_file(checkpoint, dataset, spec, profiles=profiles, convention=convention, samples=samples,
                            device=resolve_device(device))
    if report["data"]["same_as_training"] is False:
        _note(f"{spec} is not the data {checkpoint} was trained on ({recorded or 'recorded in the file'})")
    label = ((obj.get("meta") or {}).get("source") or {}).get("label") or checkpoint.name
    return report, label, dataset


def _print_evaluation(report: dict) -> None:
    from rich import box
    from rich.table import Table

    console.print(f"accuracy {report['accuracy'] * 100:.2f}% on {report['test_images']} held-out images of "
                  f"{report['data']['name']} ({report['data']['held_out']}); mean firing rate "
                  f"{report['firing_rate'] * 100:.2f}%; {report['params']:,} parameters", highlight=False)
    table = Table(title=f"energy per sample ({report['convention']} convention, {report['energy_samples']} images)",
                  box=box.SIMPLE_HEAD)
    for col in ("profile", "mJ", "complete", "regime"):
        table.add_column(col, justify="right" if col == "mJ" else "left")
    for name, e in report["energy"].items():
        table.add_row(name, f"{e['total_mj']:.4g}", "yes" if e["complete"] else "no: a lower bound", e["regime"])
    console.print(table)
    rates = Table(title="firing rate per spiking layer", box=box.SIMPLE_HEAD)
    rates.add_column("layer", no_wrap=True)
    rates.add_column("rate", justify="right")
    for row in report["layers"]:
        rates.add_row(row["layer"], f"{row['rate'] * 100:.2f}%")
    console.print(rates)
