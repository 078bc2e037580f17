"""Where a `trader rl search` study lives, and how any number of workers share it without racing.

Storages: SQLite (the embedded default, one machine), Optuna's journal file (shared folders, NFS) and any
SQLAlchemy URL, PostgreSQL above all (workers on many machines). Two races are closed here:

- creating the storage: Optuna creates its schema on first open, so two workers opening a new SQLite file or
  PostgreSQL database at the same moment collide ("table studies already exists"). Opening happens under a
  lock (a file lock beside SQLite/journal files, a PostgreSQL advisory lock), and a known collision from a
  process outside the lock is retried.
- claiming a trial: "are there fewer than N trials? then start one" must be atomic, or two workers start the
  last trial twice. The same kind of lock (one per study) is held from the count until Optuna has created the
  trial, and released as the objective starts.

A killed worker's trial is found by Optuna's heartbeats (every `heartbeat_s`; stale after 5 of them), marked
FAIL and re-queued once with the same parameters (RetryHeartbeatStaleTrialCallback); any worker runs the copy.

Passwords never go in argv: put them in PGPASSWORD or ~/.pgpass (libpq reads both), or pass the whole URL in
$TRADER_SEARCH_STORAGE. Every URL shown to a person goes through `redact`.
"""

from __future__ import annotations

import os
import re
import socket
import time
import zlib
from pathlib import Path
from urllib.parse import urlsplit

from trader_core.errors import ConfigError

STORAGE_ENV = "TRADER_SEARCH_STORAGE"  # a database URL with a password stays out of argv
GRACE_BEATS = 5  # heartbeats a trial may miss before it counts as dead (a busy machine delays a few)
CREATE_RETRIES = 5
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


# -- URLs ---------------------------------------------------------------------------------------------------------
def redact(url: str) -> str:
    """The URL without its password, for logs and reports."""
    if "://" in url and "@" in url.split("://", 1)[1]:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


def url_password(url: str) -> str | None:
    """The password written into a database URL, if any (`postgresql://user:PASSWORD@host/db`)."""
    if "://" not in url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def refuse_password_in_argv(url: str | None, flag: str = "--storage") -> None:
    """A password on the command line is visible to every user of the machine (ps, shell history): refuse it."""
    if url and url_password(url):
        raise ConfigError(f"{flag} {redact(url)} carries a password on the command line; drop it from the URL "
                          f"and set PGPASSWORD or a ~/.pgpass line, or pass the whole URL in ${STORAGE_ENV}")


def _scrub(text: str, url: str) -> str:
    password = url_password(url)
    return text.replace(url, redact(url)).replace(password, "***") if password else text


def file_of(url: str) -> Path | None:
    """The file behind a SQLite or journal URL (None for a database server or an in-memory SQLite)."""
    if url.startswith("journal:"):
        return Path(url.split(":", 1)[1])
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url[len("sqlite:///"):])
    return None


# -- locks ----------------------------------------------------------------------------------------------------------
class FileLock:
    """An exclusive flock on PATH.lock (released by the kernel if the process dies)."""

    def __init__(self, path: Path):
        self.path = path.with_name(path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd

    def release(self) -> None:  # idempotent: the objective releases early, `finally` again
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


class AdvisoryLock:
    """A PostgreSQL session advisory lock on its own connection (released by the server if the worker dies)."""

    def __init__(self, url: str, key: str):
        self.url, self.key = url, zlib.crc32(key.encode()) - 2**31  # pg_advisory_lock takes a signed bigint
        self._conn = None

    def acquire(self) -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        conn = engine.connect()
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
        self._conn = conn

    def release(self) -> None:
        if self._conn is not None:
            import sqlalchemy as sa

            conn, self._conn = self._conn, None
            try:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            finally:
                conn.close()  # ends the session: the server drops the lock even if unlock failed


class NoLock:
    """Other databases (MySQL, ...): no cross-worker lock; a study may overshoot its trial count by a few."""

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass


def lock_for(url: str, name: str):
    """A lock every worker of `url` agrees on, named `name` (one for creating the storage, one per study)."""
    path = file_of(url)
    if path is not None:  # study.db.create.lock, study.db.study_rl-recipe.lock
        return FileLock(path.with_name(f"{path.name}.{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}"))
    if urlsplit(url).scheme.split("+")[0] in ("postgresql", "postgres"):
        return AdvisoryLock(url, f"trader-rl-search:{name}")
    return NoLock()


# -- storage and study ----------------------------------------------------------------------------------------------
def open_storage(url: str, heartbeat_s: int = 60):
    """Optuna storage for `url`, set up for several writers at once.

    SQLite waits up to 60 s for the write lock instead of failing; database servers get pre-pinged connections
    (a restarted server or a dropped idle connection is reconnected). Heartbeats every `heartbeat_s` mark a dead
    worker's trial FAIL after GRACE_BEATS of them and re-queue it once."""
    import warnings

    import optuna

    # heartbeats and the journal are marked experimental in Optuna 5 but are its documented way to do this
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url.split(":", 1)[1]))
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_s,
                                      grace_period=GRACE_BEATS * heartbeat_s,
                                      heartbeat_stale_trial_callback=retry)


def _creation_race(exc: BaseException) -> bool:
    """The errors two processes creating one schema or study at once get (from a process outside our lock)."""
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(s in text for s in ("already exists", "integrityerror", "uniqueviolation", "duplicate key"))


def open_study(url: str, study_name: str, sampler, pruner, heartbeat_s: int = 60):
    """Create the study or join it: safe when any number of workers do this at the same moment."""
    import optuna

    lock = lock_for(url, "create")
    attempt = 0
    while True:
        try:
            lock.acquire()
            try:
                return optuna.create_study(storage=open_storage(url, heartbeat_s), study_name=study_name,
                                           sampler=sampler, pruner=pruner, direction="maximize",
                                           load_if_exists=True)
            finally:
                lock.release()
        except Exception as exc:  # bad URL, unreachable database, missing driver: one line, no password
            attempt += 1
            if _creation_race(exc) and attempt < CREATE_RETRIES:
                time.sleep(0.2 * attempt)
                continue
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            driver = isinstance(exc, ImportError) and url.startswith("postgres")
            hint = "; pip install 'psycopg[binary]' (the rl extra)" if driver else ""
            raise ConfigError(f"cannot open Optuna storage {redact(url)}: {_scrub(first_line, url)}{hint}") from None


# -- claiming trials ------------------------------------------------------------------------------------------------
def trial_counts(study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def live_trials(counts: dict[str, int]) -> int:
    """Trials that count towards the study's total: finished, running or queued (a FAIL is replaced)."""
    return sum(counts.get(s, 0) for s in ("COMPLETE", "PRUNED", "RUNNING", "WAITING"))


def run_trials(study, objective, target: int, url: str, poll_s: float = 10.0, max_failures: int | None = None) -> int:
    """Run trials of `study` in this process until it holds `target` finished trials; returns how many ran here.

    Under the study's claim lock: fail stale trials (a dead worker's trial is re-queued), then start a trial if
    one is queued or the study holds fewer than `target`. Optuna creates the trial inside `optimize`, so the
    lock is released by the objective as it starts. When every slot is taken by another worker's running trial,
    wait (polling every `poll_s`, at most the heartbeat): if that worker dies, its trial comes back here as a
    queued copy. Without heartbeats (journal) there is no telling a dead worker from a slow one: return."""
    import optuna

    lock = lock_for(url, f"study:{study.study_name}")
    failures_before = trial_counts(study).get("FAIL", 0)
    max_failures = max_failures if max_failures is not None else max(3, target)
    ran = 0

    def claimed(trial):
        lock.release()  # the trial exists (RUNNING, heartbeating): other workers may claim the next one
        trial.set_user_attr("worker", WORKER_ID)  # who ran it, in optuna-dashboard and for the kill test
        trial.set_user_attr("claimed", trial.number)  # a re-queued copy carries its original's attributes
        return objective(trial)

    unclaimed: dict[int, float] = {}
    while True:
        lock.acquire()
        try:
            if _heartbeats(study):
                optuna.storages.fail_stale_trials(study)
                _fail_unclaimed(study, unclaimed)
            counts = trial_counts(study)
            if counts.get("FAIL", 0) - failures_before > max_failures:
                raise ConfigError(f"{counts['FAIL'] - failures_before} trials failed in this worker's run of "
                                  f"study {study.study_name!r}; see the worker logs (DEBUG=1)")
            if counts.get("WAITING", 0) or live_trials(counts) < target:
                # a trial that raises is recorded as FAIL and replaced (Optuna's `catch`)
                study.optimize(claimed, n_trials=1, catch=(Exception,))
                ran += 1
                continue
        finally:
            lock.release()
        if not counts.get("RUNNING", 0) or not _heartbeats(study):
            return ran
        time.sleep(min(poll_s, study._storage.get_heartbeat_interval()))


def _fail_unclaimed(study, first_seen: dict[int, float]) -> None:
    """Fail (and re-queue) a RUNNING trial whose worker died after creating it but before its first heartbeat.

    Optuna never calls such a trial stale (it has no heartbeat row), so every worker would wait for it forever.
    A live worker tags its trial within milliseconds; one untagged for a whole grace period, by this process's
    own clock (worker clocks and time zones may differ), is dead."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage, now = study._storage, time.monotonic()
    grace = GRACE_BEATS * storage.get_heartbeat_interval()  # as open_storage set it
    untagged = {t._trial_id for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if t.user_attrs.get("claimed") != t.number}
    for trial_id in set(first_seen) - untagged:
        del first_seen[trial_id]
    for trial_id in untagged:
        if now - first_seen.setdefault(trial_id, now) <= grace:
            continue
        del first_seen[trial_id]
        try:
            failed = storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
        except UpdateFinishedTrialError:  # it ended after all
            continue
        retry = storage.get_heartbeat_stale_trial_callback()
        if failed and retry is not None:
            retry(study, storage.get_trial(trial_id))


def _heartbeats(study) -> bool:
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(study._storage)
