"""Where an architecture comes from: a zoo name, a trial of a study, an architecture file or a model file.

``resolve_arch(ref)`` understands:

* a zoo name (``snnas zoo`` lists them), e.g. ``spikformer-4-384-cifar``;
* ``DIR#N``: trial N of the study in folder DIR (``results/<study>``, its journal, or the
  database named by ``storage``); a trial that reused an earlier result points to that one;
* an architecture file, ``.yaml`` / ``.yml`` / ``.json`` (``snnas arch show`` writes one): the
  fields of ``ArchConfig``, strictly (unknown keys are refused);
* an snnas model file (``.pt`` from ``snnas train`` or ``nas.models.checkpoint.save_model``): its architecture.

Every form comes back as an ``ArchSource``: the architecture and what is known about where it
came from (the trial's proxy numbers, the data its study searched on).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from snnas.nas.models.arch import ArchConfig, ArchConfigError

MAX_FILE_BYTES = 1 << 20
ARCH_SUFFIXES = (".yaml", ".yml", ".json")


class ArchRefError(ValueError):
    """An architecture reference names nothing usable; the message says what and why."""


@dataclass
class ArchSource:
    arch: ArchConfig
    kind: str  # zoo | trial | file | model
    label: str  # what to call it in tables and folders: the zoo name, "<study>#<trial>", the file's stem
    study_dir: Path | None = None
    trial: int | None = None
    proxy: dict = field(default_factory=dict)  # a trial's proxy numbers (objective, accuracy, energy_mj per profile)
    data_spec: str | None = None  # the data the study searched on (its run.json), or a model file's training data

    def provenance(self) -> dict:
        out = {"kind": self.kind, "label": self.label}
        if self.study_dir is not None:
            out |= {"study_dir": str(self.study_dir), "trial": self.trial, "proxy": self.proxy}
        if self.data_spec is not None:
            out["data"] = self.data_spec
        return out


def split_trial_ref(ref: str) -> tuple[Path, int] | None:
    """``DIR#N`` -> (DIR, N); None when ``ref`` is not of that form."""
    head, sep, tail = ref.rpartition("#")
    if not sep or not head:
        return None
    try:
        number = int(tail)
    except ValueError:
        raise ArchRefError(f"{ref}: expected STUDY_DIR#TRIAL with a trial number after '#', got {tail!r}") from None
    if number < 0:
        raise ArchRefError(f"{ref}: trial numbers start at 0")
    return Path(head), number


def load_study(directory: Path, *, storage: str | None = None, study: str | None = None):
    """The Optuna study of a study folder (its journal) or of a database URL; read-only use."""
    import optuna

    from snnas.nas.search.study import redact

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study or directory.name
    if storage is None:
        journal = directory / "study.journal"
        if not journal.is_file():
            raise ArchRefError(f"{directory}: no study.journal here (a study folder such as results/snnas; pass "
                               "--storage URL for a database study)")
        from snnas.nas.search.journal import open_journal

        storage_obj, _ = open_journal(journal)
    else:
        storage_obj = storage
    try:
        return optuna.load_study(study_name=name, storage=storage_obj)
    except KeyError:
        where = redact(storage, storage) if storage else str(directory)
        raise ArchRefError(f"no study named {name!r} in {where}") from None
    except Exception as exc:  # an unreachable database, a journal that cannot be read
        where = redact(storage, storage) if storage else str(directory)
        message = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, storage)[:160]
        raise ArchRefError(f"{where}: cannot read the study ({message})") from None


def trial_source(directory: Path, number: int, *, storage: str | None = None, study: str | None = None) -> ArchSource:
    from optuna.trial import TrialState

    from snnas.nas.report.tables import study_data_spec

    loaded = load_study(directory, storage=storage, study=study)
    trials = loaded.get_trials(deepcopy=False)
    if number >= len(trials):
        raise ArchRefError(f"{directory}#{number}: the study has trials 0 to {len(trials) - 1}")
    trial = trials[number]
    original = trial.user_attrs.get("duplicate_of")
    if isinstance(original, int) and 0 <= original < len(trials):
        trial = trials[original]  # the same architecture, evaluated there
    if "arch" not in trial.user_attrs:
        raise ArchRefError(f"{directory}#{number}: the trial holds no architecture (pruned before it was sampled?)")
    try:
        arch = ArchConfig.from_dict(trial.user_attrs["arch"])
    except ArchConfigError as exc:
        raise ArchRefError(f"{directory}#{number}: the stored architecture is invalid ({exc})") from None
    proxy = {"state": trial.state.name.lower(), "objective": trial.values[0] if trial.values else None,
             "objective_name": loaded.user_attrs.get("objective", "accuracy"),
             "accuracy": trial.user_attrs.get("accuracy"), "energy_mj": trial.user_attrs.get("energy_mj") or {},
             "params": trial.user_attrs.get("params"), "firing_rate": trial.user_attrs.get("firing_rate"),
             "convention": (loaded.user_attrs.get("snnas") or {}).get("convention"),
             "resolution": (loaded.user_attrs.get("snnas") or {}).get("resolution")}
    if trial.state != TrialState.COMPLETE:
        proxy["note"] = f"trial {trial.number} is {trial.state.name.lower()}"
    return ArchSource(arch, "trial", f"{loaded.study_name}#{trial.number}", directory, trial.number,
                      {k: v for k, v in proxy.items() if not (isinstance(v, float) and math.isnan(v))},
                      study_data_spec(directory))


def file_source(path: Path) -> ArchSource:
    from snnas.energy.textfiles import TextFileError, load_structured
    from snnas.nas.search.space import _check_size

    try:
        data = load_structured(path, limit_bytes=MAX_FILE_BYTES, what="architecture file",
                               json_format=path.suffix == ".json")
        _check_size(data, str(path))
    except TextFileError as exc:
        raise ArchRefError(str(exc)) from None
    except RecursionError:
        raise ArchRefError(f"{path}: nested too deeply to be an architecture") from None
    if isinstance(data, dict) and set(data) == {"arch"}:
        data = data["arch"]
    try:
        arch = ArchConfig.from_dict(data)
    except ArchConfigError as exc:
        raise ArchRefError(f"{path}: {exc}") from None
    except TypeError as exc:  # keys that are not strings
        raise ArchRefError(f"{path}: not an architecture ({exc})") from None
    return ArchSource(arch, "file", path.stem)


def model_source(path: Path) -> ArchSource:
    from snnas.nas.models.checkpoint import load_model_file

    _, arch, obj = load_model_file(path)
    meta = obj.get("meta") or {}
    origin = meta.get("source") or {}
    return ArchSource(arch, "model", origin.get("label") or path.parent.name or path.stem,
                      data_spec=(meta.get("data") or {}).get("spec"))


def resolve_arch(ref: str, *, storage: str | None = None, study: str | None = None) -> ArchSource:
    """See the module docstring."""
    from snnas.nas.models.zoo import ZOO

    if ref in ZOO:
        return ArchSource(ZOO[ref].arch, "zoo", ref)
    path = Path(ref)
    trial = None if path.exists() else split_trial_ref(ref)
    if trial is not None:
        return trial_source(*trial, storage=storage, study=study)
    if not path.exists():
        raise ArchRefError(f"{ref}: not a zoo name (`snnas zoo`), a STUDY_DIR#TRIAL or an existing file")
    if path.is_dir():
        raise ArchRefError(f"{ref}: a folder; name one of its trials as {ref.rstrip('/')}#N (see its pareto.csv)")
    if path.suffix.lower() in ARCH_SUFFIXES:
        return file_source(path)
    return model_source(path)


def front_trials(directory: Path, *, storage: str | None = None, study: str | None = None) -> list[dict]:
    """The study's Pareto front (complete, feasible, not duplicates), best objective first."""
    from snnas.nas.report.tables import trials_frame

    frame = trials_frame(load_study(directory, storage=storage, study=study))
    if frame.empty:
        return []
    front = frame[frame["pareto"]].sort_values(["objective", "energy_mj"], ascending=[False, True])
    return front[["trial", "objective", "accuracy", "energy_mj", "params"]].to_dict("records")


def to_yaml(arch: ArchConfig, *, comments: list[str] = ()) -> str:
    """The architecture as YAML (every field, in ArchConfig's order), after ``#`` comment lines."""
    head = "".join(f"# {line}\n" for line in comments)
    return head + yaml.safe_dump(arch.to_dict(), sort_keys=False, default_flow_style=None)
