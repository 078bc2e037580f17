"""`trader rl search` as a distributed engine: workers that start at the same moment on a new study all join it
(SQLite, journal, a real PostgreSQL), a worker killed with SIGKILL mid-trial has its trial failed and re-queued,
and the study still ends with exactly the requested trials; optuna-dashboard serves the PostgreSQL study.

PostgreSQL comes from PyPI's pgserver (a real PostgreSQL 16 in a temp folder) or, failing that, Debian's
postgresql binaries (`apt-get install postgresql`) started with pg_ctl in a temp folder."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from rl.tuning.study_storage import open_storage, open_study, redact, refuse_password_in_argv, url_password
from trader_core.errors import ConfigError

TRADER = [sys.executable, "-m", "agent.cli"]
# the smallest budget the search allows that still trains and tests on real folds (a few seconds a trial)
TINY = ["--timesteps", "400", "--folds", "2", "--train-bars", "600"]


# -- a real PostgreSQL ------------------------------------------------------------------------------------------------
def _pg_ctl(data: Path, *args: str, tool: str = "pg_ctl") -> None:
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not bins:
        raise RuntimeError("no pg_ctl (apt-get install postgresql)")
    as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []  # initdb and postgres refuse root
    subprocess.run([*as_user, str(bins[-1].parent / tool), "-D", str(data), *args], check=True,
                   capture_output=True)


def _debian_postgres(root: Path) -> str:
    """Debian's postgresql in a temp folder, listening on a Unix socket only (no port to collide on)."""
    sock = root / "sock"
    sock.mkdir(parents=True)
    if os.geteuid() == 0:
        for path in (root, sock):
            shutil.chown(path, "nobody")
    _pg_ctl(root / "data", "-U", "postgres", "--auth=trust", tool="initdb")
    _pg_ctl(root / "data", "-l", str(root / "log"), "-w", "-o", f"-k {sock} -c listen_addresses=''", "start")
    return f"postgresql://postgres@/postgres?host={sock}"


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """The URL of a real PostgreSQL server's maintenance database (one per test session)."""
    import tempfile
    import warnings

    pytest.importorskip("psycopg", reason="pip install 'psycopg[binary]' (the rl extra)")
    server, reason = None, ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR is not set (containers)
            import pgserver

            server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    except Exception as exc:  # no wheel for this platform, cannot start: the system's PostgreSQL
        reason = f"pgserver: {exc}"
    if server is not None:
        yield server.get_uri()
        server.cleanup()
        return
    root = Path(tempfile.mkdtemp(prefix="trader-pg-"))  # not under pytest's root-only folder: `nobody` runs it
    root.chmod(0o755)
    try:
        url = _debian_postgres(root)
    except Exception as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"no PostgreSQL could be started ({reason}; Debian postgresql: {exc})")
    yield url
    _pg_ctl(root / "data", "-m", "immediate", "stop")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server):
    """A new, empty database on the server: the first worker to open it meets no schema."""
    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    base, _, query = postgres_server.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


# -- the schema-creation race, with bare processes ------------------------------------------------------------------
def _open_at_barrier(url: str, barrier, results) -> None:
    import optuna

    barrier.wait()  # every process calls open_study at the same instant
    try:
        study = open_study(url, "race", optuna.samplers.RandomSampler(), optuna.pruners.NopPruner(), 60)
        results.put(("ok", study.study_name))
    except BaseException as exc:  # reported to the test, which prints it
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def _race(url: str, n: int = 4) -> list:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_open_at_barrier, args=(url, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    out = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgresql"])
def test_workers_opening_a_new_study_at_the_same_instant_all_join_it(kind, tmp_path, request):
    url = {"sqlite": f"sqlite:///{tmp_path / 'study.db'}", "journal": f"journal:{tmp_path / 'study.journal'}",
           "postgresql": None}[kind] or request.getfixturevalue("postgres_url")
    assert _race(url) == [("ok", "race")] * 4

    import optuna

    assert [s.study_name for s in optuna.get_all_study_summaries(open_storage(url))] == ["race"]


# -- passwords ------------------------------------------------------------------------------------------------------
def test_a_password_on_the_command_line_is_refused_and_never_echoed(tmp_path):
    with pytest.raises(ConfigError, match="PGPASSWORD") as err:
        refuse_password_in_argv("postgresql://trader:s3cret@db:5432/optuna")
    assert "s3cret" not in str(err.value)
    refuse_password_in_argv("postgresql://trader@db:5432/optuna")  # libpq reads PGPASSWORD / ~/.pgpass
    assert url_password("postgresql://trader@db/optuna") is None and url_password("journal:/x") is None

    res = subprocess.run([*TRADER, "rl", "search", "--out", str(tmp_path / "s"), "--storage",
                          "postgresql://trader:s3cret@127.0.0.1:9/optuna"], capture_output=True, text=True,
                         env={**os.environ, "TRADER_HOME": str(tmp_path / "home")}, timeout=120)
    assert res.returncode == 1 and "PGPASSWORD" in res.stderr and "s3cret" not in res.stderr + res.stdout
    assert "Traceback" not in res.stderr and not (tmp_path / "s").exists()


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path):
    pytest.importorskip("psycopg")
    from rl.tuning.search import SearchConfig, load_or_create_study

    url = "postgresql://trader:s3cret@127.0.0.1:9/optuna"  # port 9 (discard): nothing listens
    with pytest.raises(ConfigError) as err:
        load_or_create_study(SearchConfig(out=str(tmp_path), storage=url))
    assert redact(url) in str(err.value) and "s3cret" not in str(err.value) and "\n" not in str(err.value)


# -- whole workers: simultaneous start, kill -9, re-queue ------------------------------------------------------------
def _worker(out: Path, trials: int, env: dict, *extra: str) -> subprocess.Popen:
    """One `trader rl search --worker` in its own process group (killed as a whole, like a lost machine)."""
    return subprocess.Popen([*TRADER, "rl", "search", "--worker", "--out", str(out), "--trials", str(trials),
                             *TINY, "--json", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)


def _load(url: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name="rl-recipe", storage=url)


@pytest.mark.slow
def test_two_workers_start_together_on_a_new_sqlite_study_and_run_exactly_the_trials(tmp_path):
    out = tmp_path / "search"  # both default to SQLite in the same --out: study.db
    env = {**os.environ, "TRADER_HOME": str(tmp_path / "home")}
    procs = [_worker(out, 3, env) for _ in range(2)]
    results = [p.communicate(timeout=900) for p in procs]
    for p, (stdout, stderr) in zip(procs, results):
        assert p.returncode == 0, stderr[-3000:]
        assert "already exists" not in stderr and "locked" not in stderr
    study = _load(f"sqlite:///{(out / 'study.db').resolve()}")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3  # not one more: claims are atomic
    assert json.loads(results[0][0])["trials"] == {"COMPLETE": 3}  # each worker waits for the whole study
    assert not (out / "best.json").exists()  # --worker never finalizes


@pytest.mark.slow
def test_postgres_workers_survive_a_kill_9_mid_trial(tmp_path, postgres_url):
    trials = 3
    env = {**os.environ, "TRADER_HOME": str(tmp_path / "home"), "TRADER_SEARCH_STORAGE": postgres_url}
    victim, survivor = (_worker(tmp_path / f"w{k}", trials, env, "--heartbeat", "3") for k in range(2))
    try:
        killed = _kill_mid_trial(postgres_url, victim)
        stdout, stderr = survivor.communicate(timeout=900)
    finally:
        for p in (victim, survivor):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    assert survivor.returncode == 0, stderr[-3000:]
    assert "already exists" not in stderr and json.loads(stdout)["trials"] == {"COMPLETE": trials, "FAIL": 1}

    study = _load(postgres_url)
    by_state = {s: [t for t in study.trials if t.state.name == s] for s in ("COMPLETE", "FAIL")}
    assert len(study.trials) == trials + 1 and len(by_state["COMPLETE"]) == trials  # nothing lost, nothing extra
    (failed,) = by_state["FAIL"]
    assert failed.number == killed  # the killed worker's trial, failed by the survivor's heartbeat check
    (retry,) = [t for t in by_state["COMPLETE"] if t.system_attrs.get("failed_trial") == killed]
    assert retry.params == failed.params and retry.user_attrs["worker"] != failed.user_attrs["worker"]
    assert len({json.dumps(t.params, sort_keys=True) for t in by_state["COMPLETE"]}) == trials  # no duplicate
    saved = json.loads((tmp_path / "w1" / "trials" / f"trial_{retry.number:04d}.json").read_text())
    assert saved["state"] == "COMPLETE" and saved["value"] == retry.value


def _worker_pid(trial) -> int:
    return int(trial.user_attrs["worker"].rsplit(":", 1)[1])


def _kill_mid_trial(url: str, victim: subprocess.Popen) -> int:
    """Wait until a process of `victim`'s group trains a trial, SIGKILL the group; returns that trial's number."""
    import psutil

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert victim.poll() is None, victim.communicate()[1][-3000:]
        group = {victim.pid, *(c.pid for c in psutil.Process(victim.pid).children(recursive=True))}
        try:
            # "config" is set once every parameter is drawn: from then on the worker is training
            running = [t for t in _load(url).trials if t.state.name == "RUNNING" and "worker" in t.user_attrs
                       and _worker_pid(t) in group and "config" in t.user_attrs]
        except Exception:  # the study does not exist yet
            running = []
        if running:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
            return running[0].number
        time.sleep(0.2)
    raise AssertionError("the victim never started a trial")


# -- optuna-dashboard -----------------------------------------------------------------------------------------------
def test_optuna_dashboard_serves_the_postgres_study(postgres_url):
    """The app `optuna-dashboard URL` serves, on a port the OS picks, lists the study and its trials as JSON."""
    dashboard = pytest.importorskip("optuna_dashboard", reason="pip install optuna-dashboard (the rl extra)")
    import threading
    import urllib.request
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    import optuna

    study = open_study(postgres_url, "dash", optuna.samplers.RandomSampler(seed=0), optuna.pruners.NopPruner())
    study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=3)

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, dashboard.wsgi(postgres_url), handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        studies = json.loads(urllib.request.urlopen(f"{base}/api/studies", timeout=30).read())["study_summaries"]
        (summary,) = [s for s in studies if s["study_name"] == "dash"]
        detail = json.loads(urllib.request.urlopen(f"{base}/api/studies/{summary['study_id']}", timeout=30).read())
        assert [t["state"] for t in detail["trials"]] == ["Complete"] * 3
        assert urllib.request.urlopen(f"{base}/dashboard", timeout=30).status == 200
    finally:
        server.shutdown()


# -- trader bench search ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_bench_search_reports_trials_per_hour_per_worker_count():
    from rl.tuning.search_bench import SearchBenchConfig, bench_search

    res = bench_search(SearchBenchConfig(trials=1, workers=[1], timesteps=400, folds=2, train_bars=600))
    (run,) = res["runs"]
    assert run["workers"] == 1 and run["trials"] == {"COMPLETE": 1} and run["speedup"] == 1.0
    assert run["trials_per_hour"] > 0 and run["span_s"] <= run["wall_s"]  # start-up is outside the span


@pytest.mark.timeout(180)  # the bug this guards against is a hang
def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_failed_and_rerun(tmp_path):
    """Killed between creating its trial and its first heartbeat, a worker leaves a RUNNING trial Optuna never
    calls stale; without this every other worker would wait for it forever."""
    import optuna

    from rl.tuning.study_storage import run_trials

    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = open_study(url, "orphan", optuna.samplers.RandomSampler(seed=0), optuna.pruners.NopPruner(), 1)
    with pytest.warns(UserWarning, match="Heartbeat"):  # ask() outside optimize() starts no heartbeat: the point
        orphan = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})  # RUNNING, never heartbeats
    ran = run_trials(study, lambda t: t.suggest_float("x", 0, 1), target=1, url=url, poll_s=0.5)
    assert ran == 1 and [t.state.name for t in study.trials] == ["FAIL", "COMPLETE"]
    retry = study.trials[1]
    assert retry.system_attrs["failed_trial"] == orphan.number and retry.params == {"x": orphan.params["x"]}
