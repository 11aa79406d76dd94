"""The search: an Optuna study with two objectives (accuracy up, energy down).

``SearchSettings`` holds everything a run depends on; ``run_search`` asks the sampler for a
candidate, prunes it before training when a cheap analytic limit is violated, evaluates it with
the proxy, prices its counts on every requested profile, and tells the study. A candidate that
fails (NaN loss, out of memory, any exception) is recorded as failed with its reason and the
search goes on. ``budget`` counts evaluated trials (complete or failed) across every run of the
study, so rerunning the same command after an interruption completes it.
"""

from __future__ import annotations

import logging
import math
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import quote, quote_plus

import optuna
import torch

from snnas.energy.conventions import get_convention
from snnas.energy.estimate import ENERGY_MODELS, estimate
from snnas.energy.memory import Sizing, read_geometry
from snnas.energy.profile import Profile, load_profile
from snnas.nas.models.arch import ArchConfig
from snnas.nas.data import ProxySplit
from snnas.nas.failpoints import failpoint
from snnas.nas.models import build_model
from snnas.nas.models.params import count_parameters
from snnas.nas.search.proxy import SCORES, CandidateFailed, ProxyResult, ProxySettings, train_proxy, zero_cost_proxy
from snnas.nas.search.rungs import (first_rung_scale, inherited_rungs, parse_rungs, promotable, rung_cost,
                                    rung_results, rung_settings)
from snnas.nas.search.space import DataShape, SearchSpace
from snnas.nas.search.workers import (Heartbeat, StorageUnavailable, WorkerInfo, claim_slot, evaluated_count, rdb_storage,
                         reap_dead_workers, retry, running_count, stamp, worker_info)

log = logging.getLogger(__name__)
SAMPLERS = ("tpe", "nsga2", "random")
PROXIES = ("train", "sahd")
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # a folder under --out: no path separators
MAX_CONSECUTIVE_PRUNED = 1000
MAX_CONSECUTIVE_DUPLICATES = 200
WAIT_FOR_OTHERS_S = 1.0  # poll interval while other workers finish the last trials
# A trial's energies per profile under each energy model (energy.estimate): arithmetic only, and
# Lemaire et al.'s memory-aware model; --energy-model picks the objective, the other is recorded.
ENERGY_ATTRS = {"arithmetic": "energy_mj", "lemaire": "energy_lemaire_mj"}
COMPLETE_ATTRS = {"arithmetic": "energy_complete", "lemaire": "energy_lemaire_complete"}
# Identity keys added after studies were made: a stored study without one was made with its default.
FINGERPRINT_DEFAULTS = {"energy_model": "arithmetic"}


class SearchError(ValueError):
    """A search cannot start or resume (bad settings, mismatched study, unreachable storage)."""


@dataclass(frozen=True)
class SearchSettings:
    study: str = "snnas"
    out_dir: Path = Path("results")
    budget: int = 200  # evaluated trials (complete or failed) in the whole study
    sampler: str = "tpe"
    seed: int = 0
    proxy: str = "train"  # train (short training) | sahd (training-free)
    profiles: tuple[str, ...] = ("45nm-fp32",)  # the first is the energy objective
    convention: str = "snnas"
    max_params: int | None = None
    max_energy_mj: float | None = None
    storage: str | None = None  # database URL; default: a journal file in the study folder
    train_size: int = 2000
    val_size: int = 500
    resolution: int = 16
    proxy_settings: ProxySettings = field(default_factory=ProxySettings)
    workers: int = 1  # local worker processes sharing the study
    threads: int | None = None  # torch threads per worker (None: the usable cores shared among the workers)
    heartbeat_s: int = 30  # every storage: a trial silent for 2x this is failed and retried
    rungs: tuple[int, ...] | None = None  # multi-fidelity: proxy steps per rung (nas.search.rungs); None: fixed
    eta: int = 3  # multi-fidelity reduction factor: the best 1/eta of a rung go on to the next
    energy_model: str = "arithmetic"  # the energy objective: arithmetic | lemaire (both are recorded per trial)

    @property
    def study_dir(self) -> Path:
        return self.out_dir / self.study

    @property
    def grace_s(self) -> float:
        """How long a running trial may go without a heartbeat before it is taken as orphaned."""
        return 2.0 * self.heartbeat_s

    @property
    def objective_name(self) -> str:
        """The first objective: the proxy's score (likelihood or accuracy), or the SAHD score."""
        return self.proxy_settings.score if self.proxy == "train" else "sahd_score"

    def fingerprint_keys(self) -> dict:
        """What a resumed study must share with the run that created it."""
        keys = {"proxy": self.proxy, "objective_profile": self.profiles[0], "convention": self.convention,
                "resolution": self.resolution, "train_size": self.train_size, "val_size": self.val_size,
                "proxy_settings": self.proxy_settings.identity()}
        if self.rungs:  # added with multi-fidelity: absent from (so not compared with) fixed-proxy studies
            keys |= {"rungs": list(self.rungs), "eta": self.eta}
        if self.energy_model != "arithmetic":  # added with --energy-model: studies made before have no such key
            keys["energy_model"] = self.energy_model
        return keys

    @property
    def energy_key(self) -> str:
        """The user attribute (per profile) holding the energy objective's values."""
        return ENERGY_ATTRS[self.energy_model]


@dataclass
class TrialEvent:
    """What the progress display shows after each trial."""

    number: int
    state: str  # started | step (a training step of the proxy) | complete | failed | pruned
    arch: ArchConfig
    accuracy: float | None
    energy_mj: float | None
    done: int
    budget: int
    reason: str = ""
    step: int = 0  # "step" events: training steps done of ``steps``
    steps: int = 0


def make_sampler(name: str, *, seed: int, budget: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        # Multivariate TPE models the parameters jointly (group=True splits the conditional space
        # into the subspaces that co-occur, e.g. a stage's depth with its own layers) instead of one
        # independent density per parameter; constant_liar keeps parallel workers from proposing the
        # neighbourhood a running trial already covers. Random start-up trials: Optuna's 10, but at
        # most a quarter of a small budget (at 20 trials the default would leave TPE only 10).
        with warnings.catch_warnings():  # multivariate / group / constant_liar are marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True,
                                              n_startup_trials=max(4, min(10, budget // 4)))
    if name == "nsga2":  # a population of 50 leaves only 4 generations in 200 trials
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(8, min(50, budget // 8)))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise SearchError(f"--sampler {name!r}: choose from {', '.join(SAMPLERS)}")


def check_settings(settings: SearchSettings, space: SearchSpace, shape: DataShape) -> list[Profile]:
    """Every setting, checked before the study is created or touched (a bad run must not leave a
    study that later runs are compared against). Returns the energy profiles."""
    if not STUDY_NAME.fullmatch(settings.study):
        raise SearchError(f"--study {settings.study[:80]!r}: use letters, digits, '_', '-' and '.' (at most 100, "
                          "starting with a letter or digit); it names a folder under --out")
    if settings.sampler not in SAMPLERS:
        raise SearchError(f"--sampler {settings.sampler!r}: choose from {', '.join(SAMPLERS)}")
    if settings.proxy not in PROXIES:
        raise SearchError(f"--proxy {settings.proxy!r}: choose from {', '.join(PROXIES)}")
    if settings.proxy_settings.score not in SCORES:
        raise SearchError(f"--score {settings.proxy_settings.score!r}: choose from {', '.join(SCORES)}")
    if settings.energy_model not in ENERGY_MODELS:
        raise SearchError(f"--energy-model {settings.energy_model!r}: choose from {', '.join(ENERGY_MODELS)}")
    if settings.proxy_settings.runs < 1:
        raise SearchError(f"--runs {settings.proxy_settings.runs}: at least 1")
    if settings.rungs is not None:
        if settings.proxy != "train":
            raise SearchError("--rungs trains candidates for longer on each rung: use it with --proxy train")
        try:
            parse_rungs(",".join(str(r) for r in settings.rungs))
        except ValueError as exc:
            raise SearchError(str(exc)) from None
        if not isinstance(settings.eta, int) or not 2 <= settings.eta <= 100:
            raise SearchError(f"--eta {settings.eta!r}: a whole number from 2 to 100")
    if settings.budget < 1 or settings.workers < 1 or settings.heartbeat_s < 1 or (settings.threads or 1) < 1:
        raise SearchError("--budget, --workers, --threads and --heartbeat must be at least 1")
    proxy = settings.proxy_settings
    for flag, value, low, high, low_included in (("--lr", proxy.lr, 0.0, 10.0, False),
                                                 ("--bn-gain", proxy.bn_init_gain, 0.0, 100.0, True),
                                                 ("weight_decay", proxy.weight_decay, 0.0, 10.0, True),
                                                 ("warmup_fraction", proxy.warmup_fraction, 0.0, 1.0, True),
                                                 ("ema", proxy.ema, 0.0, 0.9999, True),
                                                 ("--max-energy", settings.max_energy_mj, 0.0, math.inf, False)):
        if value is None:
            continue
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value > high or \
                (value < low if low_included else value <= low):
            bound = f"{'at least' if low_included else 'above'} {low:g}" + (f" and at most {high:g}"
                                                                             if math.isfinite(high) else "")
            raise SearchError(f"{flag} {value!r}: a finite number {bound}")
    if settings.max_params is not None and settings.max_params < 1:
        raise SearchError(f"--max-params {settings.max_params}: at least 1")
    if settings.storage is not None:
        if "://" not in settings.storage:
            raise SearchError(f"--storage {redact(settings.storage, settings.storage)!r}: expected a database URL "
                              "such as postgresql://user@host/db")
        if settings.storage.startswith("sqlite") and settings.workers > 1:
            raise SearchError("--storage sqlite is not safe for several workers; use PostgreSQL, or the default "
                              "journal file for workers on one machine")
    space.check_data(shape)
    get_convention(settings.convention)
    return [load_profile(p) for p in settings.profiles]


def make_storage(settings: SearchSettings):
    if settings.storage is None:
        from snnas.nas.search.journal import JournalError, open_journal

        settings.study_dir.mkdir(parents=True, exist_ok=True)
        try:
            storage, repaired = open_journal(settings.study_dir / "study.journal")
        except JournalError as exc:  # not a journal, or damage it cannot repair safely: one line
            raise SearchError(str(exc)) from None
        if repaired is not None:
            log.warning("%s", repaired)
        return storage
    url = settings.storage
    try:
        storage = rdb_storage(url, heartbeat_s=settings.heartbeat_s, label=f"--storage {redact(url, url)}")
    except Exception as exc:  # sqlalchemy raises many kinds for unreachable or bad URLs
        raise SearchError(f"--storage {redact(url, url)}: cannot connect "
                          f"({redact(str(exc).splitlines()[0], url)[:160]})") from None
    return storage


def _secrets(url: str) -> set[str]:
    """Every reading of the password in ``url``: an unquoted '/' or '@' makes it ambiguous, so what
    sqlalchemy reads, all that stands between 'user:' and the last '@', and its '@'-separated parts."""
    found = set()
    try:
        from sqlalchemy.engine import make_url

        found.add(make_url(url).password or "")
    except Exception:  # noqa: BLE001 - not a URL sqlalchemy reads
        pass
    greedy = re.search(r"://[^:/@\s]*:(.*)@", url)
    if greedy:
        found.add(greedy.group(1))
        found.update(part for part in greedy.group(1).split("@") if len(part) >= 3)
    return {secret for secret in found if secret}


def redact(text: str, url: str | None) -> str:
    """``text`` with the password of the storage URL ``url`` replaced by *** (raw or URL-quoted)."""
    forms = {form for secret in (_secrets(url) if url else ()) for form in
             (secret, quote(secret, safe=""), quote_plus(secret))}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def open_study(settings: SearchSettings, space: SearchSpace, split: ProxySplit, *,
               worker: WorkerInfo | None = None) -> optuna.Study:
    """Create or join the study, checking that it was made with the same space, data and settings."""
    storage = make_storage(settings)
    worker = worker or worker_info(settings.seed, 0)
    sampler = make_sampler(settings.sampler, seed=worker.sampler_seed, budget=settings.budget)
    try:
        study = optuna.create_study(study_name=settings.study, storage=storage, load_if_exists=True,
                                    directions=["maximize", "minimize"], sampler=sampler)
    except StorageUnavailable:
        raise
    except (ValueError, KeyError, TypeError) as exc:  # a journal or database that cannot be read as a study
        where = redact(settings.storage, settings.storage) if settings.storage else settings.study_dir / "study.journal"
        raise SearchError(f"{where}: cannot read the study ({type(exc).__name__}: "
                          f"{redact(str(exc).splitlines()[0] if str(exc) else '', settings.storage)[:160]})") from None
    identity = {"space": space.digest, "data": split.fingerprint, **settings.fingerprint_keys()}
    stored = study.user_attrs.get("snnas")
    if stored is None:
        with warnings.catch_warnings():  # experimental in Optuna 4; names the objectives in optuna-dashboard
            warnings.simplefilter("ignore")
            study.set_metric_names([settings.objective_name, f"{settings.energy_key}[{settings.profiles[0]}]"])
        study.set_user_attr("snnas", identity)
        study.set_user_attr("objective", settings.objective_name)
    else:
        for key in [*identity, *(k for k in FINGERPRINT_DEFAULTS if k not in identity)]:
            was, value = stored.get(key, FINGERPRINT_DEFAULTS.get(key)), identity.get(key, FINGERPRINT_DEFAULTS.get(key))
            if was != value:
                raise SearchError(f"study {settings.study!r} was created with a different {key} "
                                  f"({was!r}, now {value!r}); use a new --study name")
    reaped = reap_dead_workers(study, grace_s=settings.grace_s)
    if reaped:
        log.info("trials %s were left running by a killed worker: failed and queued again", reaped)
    return study


def _params(arch: ArchConfig) -> int:
    with torch.device("meta"):
        return count_parameters(build_model(arch))


def _energies(counts, arch: ArchConfig, profiles: list[Profile], convention: str) -> dict:
    """The counts priced on every profile by each energy model: ``energy_mj`` / ``energy_complete``
    (arithmetic) and ``energy_lemaire_mj`` / ``energy_lemaire_complete``, each by profile name. Lemaire's
    model reads the layers' shapes, the same on a network built on the meta device as on the trained one."""
    with torch.device("meta"):
        geometry = read_geometry(build_model(arch))
    sizing = Sizing(time_steps=arch.time_steps)  # memories for one sample and one time step, as snnas energy
    out = {}
    for model, memory in (("arithmetic", False), ("lemaire", True)):
        priced = {p.name: estimate(counts, p, convention=convention, memory=memory, geometry=geometry, sizing=sizing)
                  for p in profiles}
        out[ENERGY_ATTRS[model]] = {name: e.total_mj for name, e in priced.items()}
        out[COMPLETE_ATTRS[model]] = {name: e.complete for name, e in priced.items()}
        for end in ("low", "high"):  # profiles whose terms carry ranges: energy_low_mj[P], energy_high_mj[P]
            ranged = {name: getattr(e, f"total_{end}_mj") for name, e in priced.items() if e.has_range}
            if ranged:
                out[range_attr(model, end)] = ranged
    return out


def range_attr(model: str, end: str) -> str:
    """The user attribute of a trial's energies at one end of the profiles' ranges (energy_low_mj ...)."""
    return ENERGY_ATTRS[model].replace("_mj", f"_{end}_mj")


def _record(trial, result: ProxyResult, arch: ArchConfig, profiles: list[Profile], convention: str,
            params: int) -> dict:
    counts = result.counts
    updates = counts.total("neuron_updates")
    attrs = {
        "params": params, "dense": counts.total("dense"), "macs": counts.total("macs"),
        "acs": counts.total("acs"), "firing_rate": counts.total("spikes") / updates if updates else 0.0,
        "zero_cost": result.zero_cost, "loss": result.loss, "val_loss": result.val_loss,
        "likelihood": result.likelihood, "soft_accuracy": result.soft_accuracy, "train_time_s": result.train_time_s,
        "eval_time_s": result.eval_time_s, "count_time_s": result.count_time_s, "score_time_s": result.score_time_s,
        **_energies(counts, arch, profiles, convention),
    }
    for key, value in attrs.items():
        trial.set_user_attr(key, None if isinstance(value, float) and math.isnan(value) else value)
    return attrs


def run_search(settings: SearchSettings, space: SearchSpace, split: ProxySplit, *, device: torch.device,
               on_event: Callable[[TrialEvent], None] | None = None,
               study: optuna.Study | None = None, worker: WorkerInfo | None = None) -> optuna.Study:
    """Run trials until the study holds ``settings.budget`` evaluated trials (``study``: already opened).

    Several workers may run this on one study at once (see ``nas.search.workers``). Each round: reap
    trials no live worker owns, ask for a candidate (or wait while the rest of the budget runs
    elsewhere), reuse an earlier result for a re-proposed architecture, prune it if over
    ``--max-params``, else evaluate it and tell the study."""
    shape = DataShape(split.resolution, split.channels, split.num_classes, split.time_steps)
    profiles = check_settings(settings, space, shape)
    worker = worker or worker_info(settings.seed, 0)
    study = study or open_study(settings, space, split, worker=worker)
    streaks = {"pruned": 0, "duplicate": 0}
    while True:
        reap_dead_workers(study, grace_s=settings.grace_s)
        done = evaluated_count(study)
        if done >= settings.budget:
            break
        if done + running_count(study) >= settings.budget:  # the rest is running elsewhere
            time.sleep(WAIT_FOR_OTHERS_S)
            continue
        trial = _claim(study, settings, worker)
        if trial is None:
            continue
        try:
            arch = space.suggest(trial, shape)
            trial.set_user_attr("arch", arch.to_dict())
            trial.set_user_attr("seed", settings.proxy_settings.seed)
            trial.set_user_attr("threads", torch.get_num_threads())  # the proxy's numbers depend on it
            failpoint("proposed")
            if _reuse_duplicate(study, trial, arch):
                streaks["duplicate"] += 1
                if streaks["duplicate"] >= MAX_CONSECUTIVE_DUPLICATES:
                    log.warning("the sampler proposed %d evaluated architectures in a row: the space looks "
                                "exhausted; stopping with %d evaluated trials", streaks["duplicate"], done)
                    break
                continue
            streaks["duplicate"] = 0
            params = _params(arch)
            if _prune(study, trial, arch, params, settings, streaks, on_event, done):
                continue
            _evaluate(study, trial, arch, params, settings, split, profiles, device, on_event, done)
        except optuna.exceptions.UpdateFinishedTrialError:  # failed meanwhile by another worker (after an outage)
            log.warning("trial %d was taken for orphaned by another worker (its heartbeats could not be stored); "
                        "its result is dropped and its retry evaluates it again", trial.number)
        except KeyboardInterrupt:  # Ctrl-C / SIGTERM at any moment of the trial: not the candidate's fault
            _requeue_interrupted(study, trial)
            raise
    return study


def _requeue_interrupted(study: optuna.Study, trial: optuna.trial.Trial) -> None:
    """Fail a trial this worker was running when it was stopped, uncounted, and queue it again;
    a trial already told (stopped just after) is left as it is."""
    frozen = study.trials[trial.number]
    if frozen.state != optuna.trial.TrialState.RUNNING:
        return
    trial.set_user_attr("fail_reason", "interrupted")
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    retry(study, study.trials[trial.number])


def _claim(study: optuna.Study, settings: SearchSettings, worker: WorkerInfo) -> optuna.trial.Trial | None:
    """Ask for a trial and claim a slot of the budget for it (None: the budget is taken)."""
    with warnings.catch_warnings():  # ask/tell with heartbeats is what snnas does on purpose
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        trial = study.ask()
    stamp(trial, worker)
    if claim_slot(study, trial.number, settings.budget):
        return trial
    trial.set_user_attr("pruned_reason", "budget taken by other workers")
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return None


def _prune(study, trial, arch, params, settings, streaks, on_event, done) -> bool:
    if settings.max_params is None or params <= settings.max_params:
        streaks["pruned"] = 0
        return False
    trial.set_user_attr("pruned_reason", f"{params} parameters > --max-params {settings.max_params}")
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    streaks["pruned"] += 1
    if streaks["pruned"] >= MAX_CONSECUTIVE_PRUNED:
        raise SearchError(f"{MAX_CONSECUTIVE_PRUNED} candidates in a row exceed --max-params: "
                          "the limit excludes (almost) the whole space")
    _emit(on_event, trial.number, "pruned", arch, None, None, done, settings, "over --max-params")
    return True


def _evaluate(study, trial, arch, params, settings, split, profiles, device, on_event, done) -> None:
    """Train (or score) the candidate and tell the study; a failure is the candidate's, with its reason."""
    _emit(on_event, trial.number, "started", arch, None, None, done, settings)
    start = time.perf_counter()
    try:
        with Heartbeat(study, trial, interval_s=settings.heartbeat_s):
            failpoint("training")

            def on_step(step: int, steps: int) -> None:
                _emit(on_event, trial.number, "step", arch, None, None, done, settings, step=step, steps=steps)

            step_events = on_step if on_event is not None else None
            if settings.rungs:
                attrs, objective, accuracy = _climb(study, trial, arch, params, settings, split, profiles, device,
                                                    step_events)
            else:
                result = train_proxy(arch, split, settings.proxy_settings, device=device, on_step=step_events) \
                    if settings.proxy == "train" else zero_cost_proxy(arch, split, settings.proxy_settings,
                                                                     device=device)
                attrs = _record(trial, result, arch, profiles, settings.convention, params)
                if settings.proxy == "train":
                    trial.set_user_attr("cost_images", rung_cost(settings.proxy_settings))
                objective = result.objective(settings.proxy_settings.score) if settings.proxy == "train" else \
                    result.zero_cost
                accuracy = result.accuracy
        energy = attrs[settings.energy_key][profiles[0].name]
        if not (math.isfinite(objective) and math.isfinite(energy)):
            raise CandidateFailed(f"the objectives are not finite numbers ({objective}, {energy} mJ)")
    except (StorageUnavailable, optuna.exceptions.UpdateFinishedTrialError):  # not the candidate's fault
        raise
    except (CandidateFailed, RuntimeError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:300] if isinstance(exc, CandidateFailed) else \
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        trial.set_user_attr("fail_reason", reason)
        trial.set_user_attr("duration_s", time.perf_counter() - start)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        log.warning("trial %d failed: %s", trial.number, reason)
        _emit(on_event, trial.number, "failed", arch, None, None, done + 1, settings, reason)
        return
    trial.set_user_attr("duration_s", time.perf_counter() - start)
    trial.set_user_attr("accuracy", None if math.isnan(accuracy) else accuracy)
    if settings.max_energy_mj is not None:
        trial.set_constraint("max_energy_mj", energy - settings.max_energy_mj)
    if settings.max_params is not None:
        trial.set_constraint("max_params", params - settings.max_params)
    study.tell(trial, [objective, energy])
    failpoint("after_tell")
    _emit(on_event, trial.number, "complete", arch, objective, energy, done + 1, settings)


def _climb(study, trial, arch, params, settings, split, profiles, device, on_step) -> tuple[dict, float, float]:
    """Evaluate ``arch`` rung by rung while it ranks in the best 1/eta of its rung (nas.search.rungs);
    rungs a killed predecessor of this trial finished are taken over. Returns the highest rung's
    attributes, its score on the first rung's scale, and its accuracy."""
    inherited, entries, cost, seconds = inherited_rungs(study, trial.number), {}, 0, 0.0
    for k, steps in enumerate(settings.rungs):
        proxy = rung_settings(settings.proxy_settings, steps)
        entry = inherited.get(k)
        if entry is None or entry.get("steps") != steps:
            result = train_proxy(arch, split, proxy, device=device, on_step=on_step)
            attrs = {key: None if isinstance(v, float) and math.isnan(v) else v
                     for key, v in _record(trial, result, arch, profiles, settings.convention, params).items()}
            entry = {"score": result.objective(proxy.score), "accuracy": result.accuracy, "steps": steps,
                     "energy": attrs[settings.energy_key][profiles[0].name], "attrs": attrs}
        else:
            for key, value in entry["attrs"].items():
                trial.set_user_attr(key, value)
        if not (math.isfinite(entry["score"]) and math.isfinite(entry["energy"])):
            raise CandidateFailed(f"rung {k}: the objectives are not finite numbers ({entry['score']}, "
                                  f"{entry['energy']} mJ)")
        entries[str(k)], cost, seconds = entry, cost + rung_cost(proxy), seconds + entry["attrs"]["train_time_s"]
        trial.set_user_attr("rungs", entries)
        trial.set_user_attr("rung", k)
        trial.set_user_attr("cost_images", cost)
        failpoint("rung")
        if k + 1 == len(settings.rungs) or not promotable(rung_results(study, k, exclude=trial.number),
                                                           entry["score"], entry["energy"], settings.eta):
            break
    trial.set_user_attr("train_time_s", seconds)
    objective = first_rung_scale(study, k, entry["score"], entries["0"]["score"], exclude=trial.number)
    return entry["attrs"], objective, entry["accuracy"]


def _reuse_duplicate(study: optuna.Study, trial: optuna.trial.Trial, arch: ArchConfig) -> bool:
    """An architecture already evaluated gets its earlier result: the proxy is deterministic (same
    seed, batches and split), so training it again would give the same numbers. Such a trial is
    marked ``duplicate_of``, costs milliseconds, and does not count toward the budget. Equal means
    the same network (``ArchConfig.network_key``): values of fields the network ignores (the
    downsampling of a one-stage network, LS-SSA's dilations without LS-SSA) do not count. One that
    another worker is evaluating right now (a retried trial, after a restart whose samplers
    propose again what they proposed before) is pruned: its result is on the way."""
    key = arch.network_key()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if _network_key(t) == key and "duplicate_of" not in t.user_attrs:
            for name, value in t.user_attrs.items():
                if name not in ("worker", "arch", "retry_of", "retries", "heartbeat"):
                    trial.set_user_attr(name, value)
            trial.set_user_attr("duplicate_of", t.number)
            for name, value in t.constraints.items() if getattr(t, "constraints", None) else ():
                trial.set_constraint(name, value)
            study.tell(trial, list(t.values))
            return True
    pending = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
    for t in study.get_trials(deepcopy=False, states=pending):
        if t.number != trial.number and (_network_key(t) == key or
                                         (t.state == optuna.trial.TrialState.WAITING and t.params == trial.params)):
            trial.set_user_attr("pruned_reason", f"being evaluated as trial {t.number}")
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return True
    return False


def _network_key(trial) -> dict | None:
    arch = trial.user_attrs.get("arch")
    if arch is None:
        return None
    try:
        return ArchConfig.from_dict(arch).network_key()
    except ValueError:  # a configuration stored by another version: compare it as written
        return arch


def _emit(on_event, number, state, arch, objective, energy, done, settings, reason="", *, step=0, steps=0):
    if on_event is not None:
        on_event(TrialEvent(number, state, arch, objective, energy, done, settings.budget, reason, step, steps))


def refine_front(study: optuna.Study, settings: SearchSettings, split: ProxySplit, *, picks: list[tuple[int, float]],
                 steps: int, device: torch.device, on_progress: Callable[[int, int], None] | None = None,
                 data_spec: str | None = None) -> list[dict]:
    """Re-train the trials ``picks`` names (trial number, its proxy energy in mJ) for ``steps`` steps
    and price them by the study's energy model; ``snnas.nas.report.tables.front_spread`` picks
    members of the front spread over energy.

    Multi-fidelity by hand: the proxy ranks many candidates cheaply, then the front is checked
    with a longer schedule. Results are stored with the study (user attribute ``refined``), so
    ``snnas report`` shows them too, and each re-trained network is kept as an snnas model file,
    ``STUDY_DIR/refined/trial-N.pt`` (``snnas evaluate`` and ``snnas energy`` read it).
    """
    import io

    from snnas.nas.files import atomic_write
    from snnas.nas.models.checkpoint import save_model

    if not picks:
        return []
    profile = load_profile(settings.profiles[0])
    longer = ProxySettings(**{**asdict(settings.proxy_settings), "steps": steps, "runs": 1})
    folder = settings.study_dir / "refined"
    refined = []
    for i, (number, proxy_energy_mj) in enumerate(picks):
        arch = ArchConfig.from_dict(study.trials[number].user_attrs["arch"])
        result = train_proxy(arch, split, longer, device=device, zero_cost=False, keep_model=True)
        entry = {"trial": number, "proxy_accuracy": study.trials[number].user_attrs.get("accuracy"),  # None: SAHD
                 "refined_accuracy": result.accuracy, "refined_likelihood": result.likelihood,
                 "proxy_energy_mj": float(proxy_energy_mj),
                 "energy_mj": _energies(result.counts, arch, [profile], settings.convention)[settings.energy_key][
                     profile.name], "energy_model": settings.energy_model, "steps": steps, "model": str(folder / f"trial-{number}.pt")}
        buffer = io.BytesIO()
        save_model(result.model, arch, buffer, meta={
            "data": {"name": f"proxy split of {data_spec or 'the search data'}", "fingerprint": split.fingerprint,
                     "classes": split.num_classes, "spec": data_spec},
            "proxy_settings": asdict(longer), "refined": entry,
            "source": {"kind": "trial", "label": f"{study.study_name}#{number}", "study_dir": str(settings.study_dir),
                       "trial": number}})
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / f"trial-{number}.pt", buffer.getvalue())
        refined.append(entry)
        if on_progress is not None:
            on_progress(i + 1, len(picks))
    study.set_user_attr("refined", refined)
    return refined
