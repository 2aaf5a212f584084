"""The grid of a sweep (sweep.py) as an Optuna study that several workers share.

One study per sweep, in an RDB storage (a SQLite file for one machine; PostgreSQL or MySQL for
several, whatever SQLAlchemy reaches), with Optuna's GridSampler over the two parameters
`train_batch_size` and `learning_rate`. A worker (one sweep.py process) repeatedly takes a grid
point nobody has finished or is running, runs it, and records its dev score as the trial's value
and its outcome (`GridStudy.complete`); the trials of all workers land in the one storage.

What Optuna does not do for us, and how it is done here:

* The same point twice. GridSampler gives trial number k < (grid size) grid point k of one
  shuffled order (seed 0 in every worker, so all workers share the order), so the first pass
  never repeats a point; later trials pick among points it has not seen finished, at random, and
  two workers can pick the same one (optuna#2039, #4627, #5489: intended, documented). So a
  worker claims its point: it records the point (its trial's parameters) and only then reads the
  other trials; if another trial holds the point (finished, or running in a live worker), it
  gives its trial up (FAIL, user attribute `skipped`). Whichever of two rivals reads second sees
  the first, so at most one runs a point (both may give up, rarely; the point is then taken
  again).
* A point whose trial failed or was interrupted. GridSampler counts a failed trial's point as
  visited and never proposes it again, so such a point is queued once no fresh point is left, as
  Optuna's RetryFailedTrialCallback retries a trial: a WAITING copy of the failed trial (its
  parameters and system attributes, GridSampler's `grid_id` among them; a trial queued by
  `Study.enqueue_trial` has none, and GridSampler.after_trial, which reads it, fails with
  KeyError on completing it while another trial runs). The next `ask` takes it, and it is
  claimed as above.
* A worker that died. A trial records a heartbeat in the storage every HEARTBEAT_SECONDS
  (`Heartbeat`); `optuna.storages.fail_stale_trials` fails a RUNNING trial whose heartbeat is
  older than GRACE_SECONDS (a machine that stopped). A trial of this host whose worker process
  is gone (killed, Ctrl-C) is failed at once, so rerunning the command after a kill resumes
  without waiting.
* `Study.tell` on the last grid point raises RuntimeError with ask-and-tell: GridSampler calls
  `Study.stop()`, which only works inside `optimize` (optuna#4121, #5141). The trial's state is
  stored before that (`finally`), so the error is ignored (`_tell`).
* Two workers failing the same dead worker's trial at once (both start after a kill):
  `Study.tell(skip_if_finished=True)` checks the state, then updates it, and the second update
  raises UpdateFinishedTrialError; as in `optuna.storages.fail_stale_trials`, that trial is
  finished, which is all the caller wanted (`_tell`).
* Two workers creating a new SQLite storage at once race on its tables ("table ... already
  exists"); opening is retried.

Pure Python plus optuna (imported only when used: the sweep's optional dependency,
requirements-sweep.txt); no TensorFlow.
"""
import dataclasses
import importlib
import logging
import os
import random
import socket
import threading
import time
import warnings
from typing import List, Optional, Tuple

from errors import InputError

BATCH_SIZE, LEARNING_RATE = "train_batch_size", "learning_rate"
HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 180
OPEN_ATTEMPTS = 5
CONFIG_ATTR = "sweep"          # the study's user attribute: what the sweep runs (script and flags)
WORKER_ATTR = "worker"         # a trial's user attribute: {host, pid} of the worker running it
SKIPPED_ATTR = "skipped"       # a trial given up for another (why)
OUTCOME_ATTR = "outcome"       # a finished trial's outcome (sweep.py: metrics, checkpoint, ...)
SEED = 0                       # GridSampler's shuffle: the same in every worker

logger = logging.getLogger(__name__)


class MissingDependencyError(InputError, ImportError):
    """An optional package of the sweep is not installed."""


def import_optional(name):
    """The module `name`, or MissingDependencyError saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingDependencyError(
            f"sweep.py needs the package {name.split('.')[0]!r}: "
            "pip install -r requirements-sweep.txt") from None


def _optuna():
    optuna = import_optional("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Heartbeats are "experimental" and "supposed to be used with Study.optimize"; here the
    # worker records them itself (Heartbeat) around each ask-and-tell trial.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    return optuna


@dataclasses.dataclass(frozen=True)
class Worker:
    """Who runs a trial: a host name and a process id."""
    host: str
    pid: int

    @classmethod
    def this_process(cls):
        return cls(socket.gethostname(), os.getpid())

    def attr(self):
        return {"host": self.host, "pid": self.pid}


def _process_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


# -- Opening the study ----------------------------------------------------------------------------

def _storage(url):
    """An RDBStorage with heartbeats, whose SQLite connections wait for each other's writes."""
    optuna = _optuna()
    engine_kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                      heartbeat_interval=HEARTBEAT_SECONDS,
                                      grace_period=GRACE_SECONDS)


def open_study(url, study_name, batch_sizes, learning_rates, config):
    """The GridStudy `study_name` in the storage at `url` (created if new), checked to be a sweep
    of `config` ({script, flags}: what every trial runs); another sweep is an InputError."""
    optuna = _optuna()
    sqlalchemy = importlib.import_module("sqlalchemy")   # optuna's own dependency
    space = {BATCH_SIZE: list(batch_sizes), LEARNING_RATE: list(learning_rates)}
    for attempt in range(OPEN_ATTEMPTS):
        try:
            storage = _storage(url)
            study = optuna.create_study(
                storage=storage, study_name=study_name, direction="maximize",
                sampler=optuna.samplers.GridSampler(space, seed=SEED), load_if_exists=True)
            break
        except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError, ImportError) as e:
            raise InputError(f"--storage={url}: {e}") from None
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError,
                optuna.exceptions.StorageInternalError):
            if attempt == OPEN_ATTEMPTS - 1:  # not the race of two new workers: a real error
                raise
            time.sleep(random.uniform(0.2, 1.0))
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, config)
    elif stored != config:
        raise InputError(
            f"study {study_name!r} in {url} is another sweep ({stored['script']} "
            f"{' '.join(stored['flags'])}), not {config['script']} {' '.join(config['flags'])}: "
            "use another --study_name or --output_dir")
    return GridStudy(study, storage, batch_sizes, learning_rates, Worker.this_process())


# -- The grid's state -----------------------------------------------------------------------------

def point_of(trial) -> Optional[Tuple[int, float]]:
    """(batch size, learning rate) of a trial: its parameters, or the fixed parameters of a
    queued (WAITING) trial; None before its parameters are set."""
    params = trial.params or trial.system_attrs.get("fixed_params") or {}
    if BATCH_SIZE not in params or LEARNING_RATE not in params:
        return None
    return int(params[BATCH_SIZE]), float(params[LEARNING_RATE])


@dataclasses.dataclass
class PointState:
    """What the storage says about one grid point."""
    complete: list = dataclasses.field(default_factory=list)  # COMPLETE trials (FrozenTrial)
    running: list = dataclasses.field(default_factory=list)   # RUNNING trials of live workers
    tried: bool = False     # some trial took the point (any state but WAITING)
    waiting: bool = False   # a queued trial will take it

    @property
    def todo(self):
        return not self.complete and not self.running


class GridStudy:
    """A study over the grid batch_sizes x learning_rates, seen from one worker."""

    def __init__(self, study, storage, batch_sizes, learning_rates, worker):
        self.study, self.storage, self.worker = study, storage, worker
        self.batch_sizes, self.learning_rates = list(batch_sizes), list(learning_rates)
        self.points = [(b, lr) for b in self.batch_sizes for lr in self.learning_rates]

    def _is_live(self, trial):
        """Whether a RUNNING trial's worker may still be running it (heartbeats cover other
        hosts; on this host a worker process that is gone is known at once)."""
        owner = trial.user_attrs.get(WORKER_ATTR)
        return not (owner and owner["host"] == self.worker.host
                    and not _process_exists(owner["pid"]))

    def view(self):
        """{point: PointState} for every grid point, from the storage now."""
        states = {point: PointState() for point in self.points}
        trial_state = _optuna().trial.TrialState
        for trial in self.study.get_trials(deepcopy=False):
            state = states.get(point_of(trial))
            if state is None:
                continue
            if trial.state == trial_state.WAITING:
                state.waiting = True
                continue
            state.tried = True
            if trial.state == trial_state.COMPLETE:
                state.complete.append(trial)
            elif trial.state == trial_state.RUNNING and self._is_live(trial):
                state.running.append(trial)
        return states

    def fail_dead_trials(self):
        """Fails the RUNNING trials whose worker is gone: heartbeat too old, or a process of this
        host that no longer exists."""
        optuna = _optuna()
        optuna.storages.fail_stale_trials(self.study)
        for trial in self.study.get_trials(deepcopy=False,
                                           states=(optuna.trial.TrialState.RUNNING,)):
            if not self._is_live(trial):
                logger.warning("Trial %d: its worker %s is gone; marking it failed",
                               trial.number, trial.user_attrs.get(WORKER_ATTR))
                self._tell(trial.number, state=optuna.trial.TrialState.FAIL)

    def _tell(self, trial, **kwargs):
        """Study.tell, unless the trial is finished already (see the module docstring)."""
        try:
            self.study.tell(trial, skip_if_finished=True, **kwargs)
        except _optuna().exceptions.UpdateFinishedTrialError:
            # Another worker finished it between tell's check and its update.
            number = trial if isinstance(trial, int) else trial.number
            logger.warning("Trial %d was finished by another worker meanwhile", number)
        except RuntimeError as e:  # GridSampler's Study.stop() outside optimize (see above)
            if "Study.stop" not in str(e):
                raise

    # -- Taking a point -------------------------------------------------------------------------

    def next_trial(self, max_tries=None):
        """(trial, point) this worker now holds, or None when no point is left that nobody has
        finished or is running."""
        max_tries = max_tries or 4 * len(self.points) + 8
        for _ in range(max_tries):
            self.fail_dead_trials()
            states = self.view()
            todo = [point for point in self.points if states[point].todo]
            if not todo:
                return None
            if all(states[p].tried for p in todo) and not any(states[p].waiting for p in todo):
                # GridSampler will not propose a point it saw fail: queue it.
                self._requeue(todo[0])
            claimed = self._claim(todo)
            if claimed is not None:
                return claimed
            time.sleep(random.uniform(0.1, 1.0))  # two workers that collided: do not again
        raise RuntimeError(f"no grid point could be claimed in {max_tries} tries")

    def _requeue(self, point):
        """Queues `point` again: a WAITING copy of the newest trial that took it (see the module
        docstring)."""
        optuna = _optuna()
        waiting = optuna.trial.TrialState.WAITING
        source = max((t for t in self.study.get_trials(deepcopy=False)
                      if t.state != waiting and t.params and point_of(t) == point),
                     key=lambda t: t.number)
        self.study.add_trial(optuna.trial.create_trial(
            state=waiting, params=source.params, distributions=source.distributions,
            system_attrs={**source.system_attrs, "failed_trial": source.number}))

    def _claim(self, todo):
        """Asks for a trial and claims its point (see the module docstring); None if another
        trial holds the point, or it is not to do."""
        optuna = _optuna()
        trial = self.study.ask()
        trial.set_user_attr(WORKER_ATTR, self.worker.attr())
        point = (trial.suggest_categorical(BATCH_SIZE, self.batch_sizes),
                 trial.suggest_categorical(LEARNING_RATE, self.learning_rates))
        state = optuna.trial.TrialState
        rivals = [t.number for t in self.study.get_trials(deepcopy=False)
                  if t.number != trial.number and point_of(t) == point
                  and (t.state == state.COMPLETE
                       or (t.state == state.RUNNING and self._is_live(t)))]
        if point in todo and not rivals:
            return trial, point
        reason = f"trials {rivals} hold the point" if rivals else "the point is done"
        logger.info("Trial %d gives up %s: %s", trial.number, point, reason)
        trial.set_user_attr(SKIPPED_ATTR, reason)
        self._tell(trial, state=state.FAIL)
        return None

    # -- Results --------------------------------------------------------------------------------

    def complete(self, trial, value, outcome):
        """Records a finished trial: its dev score `value` (NaN is recorded as -inf, which Optuna
        accepts) and `outcome` (a JSON-able dict) as a user attribute."""
        trial.set_user_attr(OUTCOME_ATTR, outcome)
        self._tell(trial, values=value if value == value else float("-inf"))

    def fail(self, trial):
        self._tell(trial, state=_optuna().trial.TrialState.FAIL)

    def finished(self) -> List:
        """The first COMPLETE trial of each grid point that has one, in grid order."""
        states = self.view()
        return [min(states[p].complete, key=lambda t: t.number) for p in self.points
                if states[p].complete]

    def finished_last(self, numbers):
        """Whether the trial completed last in the grid is one of `numbers`."""
        done = [t for p, s in self.view().items() for t in s.complete]
        last = max(done, key=lambda t: (t.datetime_complete, t.number), default=None)
        return last is not None and last.number in numbers


class Heartbeat:
    """Records a trial's heartbeat in the storage now and every HEARTBEAT_SECONDS while the block
    runs, so that other workers know its worker is alive."""

    def __init__(self, grid_study, trial):
        self.storage = grid_study.storage
        self.trial_id = trial._trial_id  # pylint: disable=protected-access  # storage's id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.wait(HEARTBEAT_SECONDS):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception as e:  # pylint: disable=broad-except
                logger.warning("Could not record the heartbeat of trial id %d: %s",
                               self.trial_id, e)

    def __enter__(self):
        self.storage.record_heartbeat(self.trial_id)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
