"""Running a sweep on Dask distributed: the store, the cluster, the grid/random and tune loops.

The client (this process) is the only writer of ``DIR/results.jsonl``: each finished job's
row is appended (and flushed to disk) as it arrives, so a killed sweep loses only the jobs in
flight, and no row is written twice. A rerun reads the store first and skips every job whose
key is in it (``--retry-failed`` runs failed and timed-out ones again; their new row is
appended and the last row of a key is the one that counts).

Jobs are Dask tasks (:func:`tensorfab.sweep.job.run_job`), one thread per worker, on a
:class:`distributed.LocalCluster` or on a running scheduler. A worker that dies mid-job loses
that job; Dask runs it again on another worker (a job whose workers keep dying is recorded as
failed with Dask's reason).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import warnings
from pathlib import Path

from generators.errors import ConfigError, UserError

from .job import _row, run_job
from .spec import Sweep, expand, jobs_for, point_config, point_label, points, tool_versions

RESULTS = "results.jsonl"


class Store:
    """``DIR/results.jsonl``: append-only rows, the last row of a key counts."""

    def __init__(self, out: Path):
        self.path = Path(out) / RESULTS
        self.rows: dict[str, dict] = {}
        self.torn = 0
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a kill: its job reruns
                    self.torn += 1
                    continue
                if isinstance(row, dict) and "key" in row:
                    self.rows[row["key"]] = row

    def done(self, key: str, retry_failed: bool = False) -> bool:
        row = self.rows.get(key)
        return row is not None and not (retry_failed and row.get("status") != "ok")

    def append(self, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            f.seek(0, os.SEEK_END)
            if f.tell():
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":  # a torn last line stays a line of its own
                    f.write(b"\n")
            f.write((json.dumps(row, sort_keys=False) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())
        self.rows[row["key"]] = row


_ADDRESS = re.compile(r"^(tcp|tls|ws|wss)://[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


def connect(workers: int, scheduler: str | None, timeout: float = 10.0):
    """A Dask client: on ``scheduler`` (``tcp://HOST:PORT``), else on a new LocalCluster of
    ``workers`` single-threaded worker processes. An address that does not answer within
    ``timeout`` seconds is a :class:`UserError`."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        if not _ADDRESS.match(scheduler):
            raise UserError(f"--scheduler {scheduler!r}: not a scheduler address (allowed: "
                            "tcp://HOST:PORT, as `dask scheduler` prints it)")
        try:
            return Client(scheduler, timeout=f"{timeout:g}s")
        except (OSError, TimeoutError) as err:
            raise UserError(f"--scheduler {scheduler}: no Dask scheduler answered within "
                            f"{timeout:g} s ({type(err).__name__}) (allowed: the address of a "
                            "running scheduler, see docs/sweep.md)") from None
    if not 1 <= workers <= 512:
        raise UserError(f"--workers {workers}: out of range (allowed: 1..512)")
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           memory_limit=0, dashboard_address=":0",
                           silence_logs=logging.ERROR)
    return Client(cluster)


def _close(client) -> None:
    cluster = client.cluster
    client.close()
    if cluster is not None:
        cluster.close()


class Progress:
    """A tqdm bar: done, failed and running jobs, and tqdm's own ETA."""

    def __init__(self, total: int, done: list[dict], enabled: bool = True):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=len(done), unit="job", desc="sweep",
                        file=sys.stderr, disable=not enabled, dynamic_ncols=True)
        self.ok = sum(r.get("status") == "ok" for r in done)
        self.failed = len(done) - self.ok

    def update(self, row: dict, running: int) -> None:
        if row.get("status") == "ok":
            self.ok += 1
        else:
            self.failed += 1
        self.bar.update(1)
        self.bar.set_postfix(ok=self.ok, failed=self.failed, running=running)

    def close(self) -> None:
        self.bar.close()


def _gather(client, submitted: dict, store: Store, bar: Progress, nthreads: int) -> list[dict]:
    """Wait for futures (future -> job) and append each row as it comes."""
    from distributed import as_completed

    rows = []
    pending = len(submitted)
    for fut in as_completed(list(submitted)):
        job = submitted[fut]
        try:
            row = fut.result()
        except Exception as err:  # Dask's own failure (KilledWorker: the job killed workers)
            row = _row(job, error=f"worker lost: {type(err).__name__}: "
                       f"{' '.join(str(err).split())[:300]}")
        pending -= 1
        store.append(row)
        rows.append(row)
        bar.update(row, min(pending, nthreads))
    return rows


def _nthreads(client) -> int:
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:
        return 1


def check_points(sweep: Sweep) -> list[tuple[dict, object]]:
    """Every point of a grid/random sweep with its validated config (before any job)."""
    out = []
    for p in points(sweep):
        out.append((p, point_config(sweep, p)))
    if not out:
        raise ConfigError(f"{sweep.source}: axes: empty grid (allowed: at least one point)")
    return out


def check_workload(sweep: Sweep, cfg) -> None:
    if not sweep.spec.workload:
        return
    from generators.units import family

    from .job import workload_arrays

    try:
        workload_arrays(family(cfg.unit), cfg, sweep.spec.workload)
    except (ValueError, UserError) as err:
        raise ConfigError(f"{sweep.source}: workload: {' '.join(str(err).split())}") from None


def run(sweep: Sweep, out: Path, *, workers: int = 2, scheduler: str | None = None,
        retry_failed: bool = False, progress: bool = True, say=print,
        before_jobs=None, client=None, connect_timeout: float = 10.0) -> list[dict]:
    """Run every job of the sweep not yet in ``out``'s store; the rows of this sweep.

    Everything is validated (points, workload, the scheduler's address) before
    ``before_jobs()`` is called and the first job is submitted. ``client``: an open Dask
    client to use (and leave open) instead of connecting."""
    own = client is None

    def open_client():
        return connect(workers, scheduler, connect_timeout) if own else client

    def close(c):
        if own:
            _close(c)

    s = sweep.spec
    store = Store(out)
    tools = tool_versions()
    if s.mode == "tune":
        first = point_config(sweep, expand({k: v[0] for k, v in s.axes.items()}))
        check_workload(sweep, first)
        c = open_client()
        if before_jobs:
            before_jobs()
        try:
            return _tune(sweep, c, store, tools, out, progress, say)
        finally:
            close(c)
    pts = check_points(sweep)
    check_workload(sweep, pts[0][1])
    jobs, seen = [], set()
    for p, cfg in pts:
        for j in jobs_for(sweep, p, cfg, tools):
            if j["key"] not in seen:
                seen.add(j["key"])
                jobs.append(j)
    todo = [j for j in jobs if not store.done(j["key"], retry_failed)]
    c = open_client() if todo else None  # an unreachable scheduler: the one line said
    say(f"{len(pts)} points, {len(jobs)} jobs: {len(jobs) - len(todo)} already in "
        f"{store.path}, {len(todo)} to run")
    if todo:
        if before_jobs:
            before_jobs()
        bar = Progress(len(jobs), [store.rows[j["key"]] for j in jobs
                                   if store.done(j["key"], retry_failed)], progress)
        try:
            work = str(Path(out).resolve() / "jobs")
            futs = {c.submit(run_job, j, work, pure=False): j for j in todo}
            _gather(c, futs, store, bar, _nthreads(c))
        except KeyboardInterrupt:
            say(f"interrupted: rows so far are in {store.path}; run again to finish")
            raise
        finally:
            bar.close()
            close(c)
    return [store.rows[j["key"]] for j in jobs if j["key"] in store.rows]


def _tune(sweep: Sweep, client, store: Store, tools: dict, out: Path, progress: bool,
          say) -> list[dict]:
    """Optuna's TPE sampler (with its constraints) over the axes, asked in batches of the
    cluster's worker threads; jobs already in the store are told from it, not re-run."""
    import optuna
    from optuna.samplers import TPESampler
    from optuna.trial import TrialState

    s = sweep.spec
    goal = s.objective.maximize or s.objective.minimize
    direction = "maximize" if s.objective.maximize else "minimize"
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = TPESampler(seed=s.sample_seed,
                             n_startup_trials=min(10, max(2, s.samples // 3)))
        study = optuna.create_study(direction=direction, sampler=sampler)
    nthreads = _nthreads(client)
    bar = Progress(s.samples, [], progress)
    rows: list[dict] = []
    work = str(Path(out).resolve() / "jobs")
    asked = 0
    try:
        while asked < s.samples:
            batch = []
            for _ in range(min(nthreads, s.samples - asked)):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    trial = study.ask()
                point = expand({k: _suggest(trial, k, v) for k, v in s.axes.items()})
                asked += 1
                try:
                    cfg = point_config(sweep, point)
                except ConfigError as err:
                    study.tell(trial, state=TrialState.FAIL)
                    say(f"trial {trial.number}: {err}")
                    continue
                job = jobs_for(sweep, point, cfg, tools)[0]
                batch.append((trial, job))
            todo = {}
            for _trial, job in batch:
                if not store.done(job["key"]) and job["key"] not in {j["key"] for j in
                                                                      todo.values()}:
                    todo[client.submit(run_job, job, work, pure=False)] = job
            _gather(client, todo, store, bar, nthreads)
            for trial, job in batch:
                row = store.rows[job["key"]]
                if job["key"] not in {j["key"] for j in todo.values()}:
                    bar.update(row, 0)  # told from the store
                if row not in rows:
                    rows.append(row)
                value = row.get(goal)
                with warnings.catch_warnings():  # Trial.set_constraint is experimental
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    for c in sweep.constraints:
                        v = c.violation(row.get(c.metric))
                        trial.set_constraint(c.text, v if math.isfinite(v) else 1e300)
                trial.set_user_attr("key", job["key"])
                if row.get("status") != "ok" or value is None:
                    study.tell(trial, state=TrialState.FAIL)
                else:
                    study.tell(trial, float(value))
    except KeyboardInterrupt:
        say(f"interrupted: rows so far are in {store.path}; run again to finish")
        raise
    finally:
        bar.close()
    best = best_row(rows, goal, direction, sweep.constraints)
    if best is None:
        say(f"tune: no measured point meets {', '.join(s.constraints) or 'the goal'}")
    else:
        say(f"tune: best {goal} = {best[goal]} at {point_label(best['point'])} "
            f"({best['target']})")
    return rows


def _suggest(trial, key: str, values: list):
    """Optuna's categorical choice of one axis value (a list value, of keys varied together,
    chosen by its JSON text)."""
    if "," not in key:
        return trial.suggest_categorical(key, values)
    return json.loads(trial.suggest_categorical(key, [json.dumps(v) for v in values]))


def best_row(rows: list[dict], goal: str, direction: str, constraints) -> dict | None:
    ok = [r for r in rows if r.get("status") == "ok" and r.get(goal) is not None
          and all(c.violation(r.get(c.metric)) <= 0 for c in constraints)]
    if not ok:
        return None
    return (max if direction == "maximize" else min)(ok, key=lambda r: r[goal])
