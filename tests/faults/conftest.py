import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest

DEFAULT_URL = "postgresql://snnas:snnas@127.0.0.1:5432/snnas_test"
# Ends with --workers 1: a test that wants more workers must put its --workers after *TINY (the last one wins).
TINY = ["--train-size", "200", "--val-size", "64", "--batch-size", "16", "--sampler", "random", "--workers", "1"]


@pytest.fixture(scope="session")
def pg_url():
    url = os.environ.get("SNNAS_TEST_POSTGRES", DEFAULT_URL)
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # no driver, no server, wrong credentials
        pytest.skip(f"no PostgreSQL at {url} ({type(exc).__name__}); .ci/run starts one with .ci/postgres.sh")
    return url


@pytest.fixture
def study_name(pg_url):
    name = f"t-{uuid.uuid4().hex[:10]}"
    yield name
    try:
        optuna.delete_study(study_name=name, storage=pg_url)
    except KeyError:
        pass


def _default_sigint() -> None:
    """A shell that starts pytest in the background (``pytest &`` without job control) ignores
    SIGINT, and children inherit that: Python then never turns Ctrl-C into KeyboardInterrupt.
    The command under test gets the disposition a terminal gives it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "snnas", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint, **kwargs)


def wait_for(predicate, *, timeout=60.0, every=0.2):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")
