"""One road for runs, measurements and records: request → plan → executor → store.

Every caller that wants training runs -- ``limen run``, ``limen check``, the Python API, the
benchmarks -- hands a :class:`Road` its configs; the road

1. **plans** from the store (:mod:`limen.verify.store`) what is missing: runs of the current
   code version, and values of the requested measurements (:class:`Measure`) of those runs;
2. **claims** each group of missing runs just before it is trained, so that processes
   working on one store split the work instead of repeating it; runs another live process
   holds are waited for, runs of a dead one taken over;
3. **executes** the groups through an executor (local or Ray, :mod:`limen.verify.executors`):
   the producer's group function trains the runs and, where they were trained, measures
   them (the networks are dropped afterwards, or saved with ``keep_models``);
4. **writes** each group's results in one transaction (the driver is the only writer),
   and exports ``records.jsonl`` at the end.

Runs stored by other code versions are not reused unless ``reuse_stale`` says so; the
road says how many it found and what it does with them. A measurement missing from a
finished run is computed from its kept networks (no training) when they were saved,
else the run is trained again.

Measurements are functions ``fn(models, data, **params)`` of one run's networks (a
``RunModels``, or with ``prediction=True`` only its pre-run view ``PreRunModels``) and its
data set (``x_test``, ``y_test``, ``x_train``, …), named and versioned (:class:`Measure`,
:data:`MEASURES`), stored apart from the engine's metrics.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

from .records import config_key
from .store import EXPORT_FILE, Store
from .versions import source_version

#: sources that every measurement's version includes besides its own module: measurements compare
#: networks with theory, and read the engine's formulas (τ, the oracle student)
MEASURE_SOURCES = ("limen.theory", "limen.verify.subliminal.metrics")


# ----------------------------------------------------------------------------- measurements

@dataclasses.dataclass(frozen=True)
class Measure:
    """A named measurement of a run's networks: ``fn(models, data, **params) -> JSON-ready value``.

    ``fn``: ``"module:function"`` (importable wherever the run trains, e.g. on Ray workers) or a
    module-level function. ``params``: keyword arguments, part of the measurement's identity.
    ``prediction=True``: ``fn`` gets only the pre-run view (``models.pre_run()``: no trained
    student), so it cannot read the outcome. ``sources``: the limen modules whose source is
    the version (default: ``fn``'s module and :data:`MEASURE_SOURCES`); the value is stored
    under ``name`` and is current only for its ``version``.
    """

    name: str
    fn: str | Callable
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    prediction: bool = False
    sources: tuple[str, ...] = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"a measurement name must be an identifier, got {self.name!r}")
        if isinstance(self.fn, str) and ":" not in self.fn:
            raise ValueError(f"measurement {self.name}: fn must be 'module:function', got {self.fn!r}")
        if not isinstance(self.fn, str) and not callable(self.fn):
            raise ValueError(f"measurement {self.name}: fn must be 'module:function' or a function")
        json.dumps(dict(self.params), sort_keys=True)  # params must be JSON (they are part of the version)
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "sources", tuple(self.sources))

    @property
    def path(self) -> str:
        """``module:function`` of ``fn``."""
        return self.fn if isinstance(self.fn, str) else f"{self.fn.__module__}:{self.fn.__qualname__}"

    @property
    def version(self) -> str:
        module = self.path.split(":", 1)[0]
        mods = self.sources or ((module,) if module.startswith("limen.") else ()) + MEASURE_SOURCES
        extra = json.dumps({"fn": self.path, "params": self.params, "prediction": self.prediction}, sort_keys=True)
        if not module.startswith("limen."):  # a user's function: its own source text counts
            extra += inspect.getsource(self.function())
        return source_version(tuple(mods), extra)

    def function(self) -> Callable:
        if callable(self.fn):
            return self.fn
        module, _, name = self.fn.partition(":")
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj

    def __call__(self, models, data):
        view = models.pre_run() if self.prediction else models
        return self.function()(view, data, **self.params)


#: Named measurements (:func:`get_measure` resolves a name here); :func:`register_measure` adds one.
MEASURES: dict[str, Measure] = {}


def register_measure(measure: Measure) -> Measure:
    """Make ``measure`` known by its name (a request may then name it); returns it."""
    old = MEASURES.get(measure.name)
    if old is not None and old != measure:
        raise ValueError(f"a measurement named {measure.name!r} is already registered ({old.path})")
    MEASURES[measure.name] = measure
    return measure


register_measure(Measure("check", "limen.verify.checks.measure:run_measures"))


def get_measure(spec: Any) -> Measure:
    """A :class:`Measure` from a registered name, a Measure, or ``(name, function)``
    (``functools.partial`` keywords become its params)."""
    if isinstance(spec, Measure):
        return spec
    if isinstance(spec, str):
        if spec not in MEASURES:
            raise ValueError(f"unknown measurement {spec!r}; registered: {', '.join(sorted(MEASURES))}")
        return MEASURES[spec]
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
        name, fn = spec
        if isinstance(fn, functools.partial):
            if fn.args:
                raise ValueError(f"measurement {name}: give partial() keywords, not positional arguments")
            return Measure(name, fn.func, params=fn.keywords)
        return Measure(name, fn)
    raise ValueError(f"a measurement is a registered name, a Measure or (name, function), got {spec!r}")


# ----------------------------------------------------------------------------- producers

class Producer(Protocol):
    """What trains runs: ``name``, ``version`` (of its code), ``plan(configs) -> groups`` and
    ``group_fn(measures, keep_models)``, a picklable ``fn(group) -> results`` (one result dict per
    config: ``key``, ``version``, ``record``, and ``measures`` / ``models`` when asked)."""

    name: str
    version: str

    def plan(self, configs: list) -> list[list]: ...

    def group_fn(self, measures: Sequence[Measure], keep_models: bool) -> Callable[[list], list[dict]]: ...

    def measure_kept(self, config, path: Path, measures: Sequence[Measure]) -> dict[str, Any]: ...


@dataclasses.dataclass
class EachProducer:
    """A producer that computes one config at a time in this process: ``compute(config) -> record``."""

    name: str
    compute: Callable[[Any], dict]
    sources: tuple[str, ...]

    @property
    def version(self) -> str:
        return source_version(tuple(self.sources), self.name)

    def plan(self, configs):
        return [[c] for c in configs]

    def group_fn(self, measures, keep_models):
        if measures or keep_models:
            raise ValueError(f"{self.name} runs take no measurements and keep no models")
        version = self.version
        return lambda group: [{"key": config_key(c), "version": version, "record": self.compute(c)} for c in group]

    def measure_kept(self, config, path, measures):
        raise ValueError(f"{self.name} runs keep no networks to measure")


# ----------------------------------------------------------------------------- the road

@dataclasses.dataclass
class _Plan:
    """What the store lacks: ``done`` key -> (version, reused stale), configs to ``train`` and to
    ``measure`` from kept networks; keys ``retrain`` (finished, trained again to measure) and
    ``stale`` (stored only by other code versions)."""

    done: dict[str, tuple[str, bool]] = dataclasses.field(default_factory=dict)
    train: list = dataclasses.field(default_factory=list)
    measure: list = dataclasses.field(default_factory=list)
    retrain: list[str] = dataclasses.field(default_factory=list)
    stale: list[str] = dataclasses.field(default_factory=list)


def _note(message: str) -> None:
    print(f"limen: {message}", file=sys.stderr, flush=True)


class Road:
    """Plan, claim, execute and store the runs of ``configs`` (module docstring); :meth:`run` returns records.

    ``folder``: the results folder (its ``results.db``); ``view``: a report folder inside it
    (a check's name) whose runs are exported to ``folder/view/records.jsonl`` (else
    ``folder/records.jsonl`` gets every run). ``executor``: ``"local"``, ``"ray"`` or an
    executor object (with ``executor_options``).
    """

    def __init__(self, folder: str | Path, producer: Producer, measures: Sequence = (), *, view: str | None = None,
                 reuse_stale: bool = False, keep_models: bool = False, executor: Any = "local",
                 executor_options: dict | None = None, progress: bool | None = None, description: str = "runs",
                 lease_s: float | None = None, poll_s: float = 0.5):
        self.folder = Path(folder)
        self.producer = producer
        self.measures = [get_measure(m) for m in measures]
        names = [m.name for m in self.measures]
        if len(set(names)) != len(names):
            raise ValueError(f"two measurements with one name in {names}")
        self._mv = {m.name: m.version for m in self.measures}  # computed once: it hashes source files
        self.view, self.reuse_stale, self.keep_models = view, bool(reuse_stale), bool(keep_models)
        self.executor, self.executor_options = executor, dict(executor_options or {})
        self.progress, self.description = progress, description
        self.lease_s, self.poll_s = lease_s, poll_s

    # -- what is missing -----------------------------------------------------------

    def _plan(self, store: Store, configs: dict[str, Any], version: str) -> "_Plan":
        """What the store lacks for ``configs`` (key -> config) at code version ``version``."""
        versions = store.versions(configs)
        measured = store.measured(configs)
        plan = _Plan()
        for key, cfg in configs.items():
            vs = versions.get(key, [])
            if version in vs:
                missing = [n for n, mv in self._mv.items() if mv not in measured.get((key, version, n), ())]
                if not missing:
                    plan.done[key] = (version, False)
                elif store.models_path(key, version).exists():
                    plan.measure.append(cfg)
                else:
                    plan.train.append(cfg)
                    plan.retrain.append(key)
            elif vs and self.reuse_stale and all(measured.get((key, vs[0], n)) for n in self._mv):
                plan.done[key] = (vs[0], True)
            else:
                plan.train.append(cfg)
                if vs:
                    plan.stale.append(key)
        return plan

    def _tell(self, store: Store, total: int, plan: "_Plan") -> None:
        """Say what the road found that the user may not expect (other code versions, missing measurements)."""
        what = ", ".join(m.name for m in self.measures)
        if plan.stale:
            _note(f"{len(plan.stale)} of {total} run(s) in {store.path} were stored by another version of the code "
                  f"(this one: {self.producer.name} {self.producer.version}); they are trained again, the old "
                  f"results stay in the store. Pass --reuse-stale (reuse_stale=True) to use them instead, marked "
                  f"stale.")
        reused = [k for k, (_, stale) in plan.done.items() if stale]
        if reused:
            _note(f"reusing {len(reused)} run(s) stored by another version of the code, marked stale (--reuse-stale)")
        if plan.measure:
            _note(f"measuring {len(plan.measure)} finished run(s) from their kept networks ({what})")
        if plan.retrain:
            _note(f"training {len(plan.retrain)} finished run(s) again to measure them ({what}): their networks "
                  f"were not kept (--keep-models keeps them)")

    # -- the loop ------------------------------------------------------------------

    def run(self, configs: Sequence) -> list[dict]:
        """Records of ``configs`` in order (each with its measurements), trained only where missing."""
        from .executors import get_executor
        from .progress import progress

        configs = list(configs)
        keys = [config_key(c) for c in configs]
        unique = dict(zip(keys, configs))
        version = self.producer.version
        store = Store(self.folder, **({} if self.lease_s is None else {"lease_s": self.lease_s}))
        try:
            if self.view is not None:
                store.add_members(self.view, unique)
            plan = self._plan(store, unique, version)
            self._tell(store, len(unique), plan)
            store.mark_stale((k, v) for k, (v, stale) in plan.done.items() if stale)
            todo = len(plan.train) + len(plan.measure)
            if todo:
                ex = get_executor(self.executor, **self.executor_options)
                with progress(todo, self.description, enabled=self.progress) as bar:
                    plan = self._execute(store, unique, version, ex, bar, plan)
            return [self._record(store, k, *plan.done[k]) for k in keys]
        finally:
            store.release()
            store.purge_void()
            store.export_jsonl(self.folder / self.view / EXPORT_FILE if self.view else None, view=self.view)
            store.close()

    def _execute(self, store: Store, unique: dict, version: str, ex, bar, plan: "_Plan") -> "_Plan":
        """Train and measure what ``plan`` lists until the store has every run; returns the final (empty) plan."""
        item = lambda cfg: f"{config_key(cfg)}:{version}"  # noqa: E731
        fn = self.producer.group_fn(self.measures, self.keep_models)
        shown, granted = "", [0]

        def claim(group):  # in the driver, just before a group is trained
            got = store.claim(item(c) for c in group)
            mine = {config_key(c): c for c in group if item(c) in got}
            again = self._plan(store, mine, version)  # another process may have finished some meanwhile
            still = {config_key(c) for c in again.train + again.measure}
            store.release(item(c) for k, c in mine.items() if k not in still)
            granted[0] += len(still)
            return [c for k, c in mine.items() if k in still]

        def on_done(group, results):
            for r in results:
                if r["version"] != version or r.get("measure_versions", self._mv) != self._mv:
                    raise RuntimeError(f"a worker runs other code ({self.producer.name} version {r['version']}, "
                                       f"measurements {r.get('measure_versions')}; this process {version}, "
                                       f"{self._mv}); install the same limen everywhere")
                if r.get("models") is not None:
                    store.save_models(r["key"], version, r["models"])
            runs = [{"key": r["key"], "version": version, "producer": self.producer.name, "record": r["record"]}
                    for r in results if r.get("record") is not None]
            values = [{"key": r["key"], "run_version": version, "name": n, "version": mv, "value": r["measures"][n]}
                      for r in results for n, mv in self._mv.items() if n in r.get("measures", {})]
            store.put(runs, values, view=self.view, release=[item(c) for c in group])
            bar.advance(len(results), self.description)

        while plan.train or plan.measure:
            held = store.holders(item(c) for c in plan.train + plan.measure)
            free_measure = [c for c in plan.measure if item(c) not in held]
            free_train = [c for c in plan.train if item(c) not in held]
            if not free_measure and not free_train:
                owners = ", ".join(sorted({o.rsplit(":", 1)[0] for o in held.values()}))
                note = f"{self.description} (waiting for {len(held)} run(s) that {owners} holds)"
                if note != shown:
                    bar.advance(0, note)
                    shown = note
                time.sleep(self.poll_s)
            for cfg in free_measure:
                if claim([cfg]):
                    values = self.producer.measure_kept(cfg, store.models_path(config_key(cfg), version),
                                                        self.measures)
                    on_done([cfg], [{"key": config_key(cfg), "version": version, "measures": values}])
            if free_train:
                ex.map_groups(self.producer.plan(free_train), fn, on_done, claim=claim)
            before = len(plan.train) + len(plan.measure)
            plan = self._plan(store, unique, version)
            if granted[0] and len(plan.train) + len(plan.measure) >= before:
                raise RuntimeError(f"{self.producer.name}: runs were trained but their results are not in the store")
            granted[0] = 0
        return plan

    def _record(self, store: Store, key: str, version: str, stale: bool) -> dict:
        wanted = {n: (None if stale else mv) for n, mv in self._mv.items()}
        rec = store.record(key, version, wanted)
        if stale:
            rec["stale"] = True
        return rec
