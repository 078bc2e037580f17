"""trader_core: the exception tree, config precedence and round trip, runtime knobs."""

import json

import pytest
from pydantic import BaseModel

from trader_core import errors
from trader_core.config import load_config, resolve_config, save_config
from trader_core.runtime import default_torch_threads, trader_home


class Demo(BaseModel):
    steps: int = 10
    name: str = "a"
    rate: float = 0.5


def test_errors_share_one_tree_and_the_builtin_bases():
    assert issubclass(errors.DataError, errors.TraderError) and issubclass(errors.DataError, ValueError)
    assert issubclass(errors.ChainUnavailable, ConnectionError) and errors.ChainUnavailable.retryable
    assert not errors.SwapRefused.retryable
    with pytest.raises(errors.DependencyMissing, match="pip install nope"):
        errors.require("no_such_module_xyz", "pip install nope")


def test_config_precedence_env_then_file_then_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADER_STEPS", "20")
    monkeypatch.setenv("TRADER_NAME", "env")
    assert resolve_config(Demo).steps == 20
    f = tmp_path / "c.yaml"
    f.write_text("name: file\nrate: 0.25\n")
    cfg = resolve_config(Demo, {"rate": None, "name": "flag"}, f)
    assert (cfg.steps, cfg.name, cfg.rate) == (20, "flag", 0.25)


def test_config_errors_are_one_line(tmp_path):
    with pytest.raises(errors.ConfigError, match="invalid setting 'steps'") as err:
        resolve_config(Demo, {"steps": "many"})
    assert "\n" not in str(err.value)
    with pytest.raises(errors.ConfigError, match="does not exist"):
        resolve_config(Demo, file=tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(errors.ConfigError, match="cannot parse"):
        resolve_config(Demo, file=bad)


def test_saved_config_round_trips(tmp_path):
    cfg = Demo(steps=3, name="x")
    path = save_config(cfg, tmp_path / "run")
    assert json.loads(path.read_text()) == {"steps": 3, "name": "x", "rate": 0.5}
    assert load_config(Demo, tmp_path / "run") == cfg
    with pytest.raises(errors.ConfigError, match="is missing"):
        load_config(Demo, tmp_path / "elsewhere")


def test_runtime_knobs(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADER_HOME", str(tmp_path / "h"))
    assert trader_home() == tmp_path / "h" and trader_home().is_dir()
    monkeypatch.setenv("TRADER_TORCH_THREADS", "3")
    assert default_torch_threads() == 3
    monkeypatch.delenv("TRADER_TORCH_THREADS")
    import os

    assert default_torch_threads() == (1 if (os.cpu_count() or 1) <= 4 else min(os.cpu_count(), 8))


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5", ""])
def test_a_bad_torch_thread_count_is_a_config_error(monkeypatch, value):
    monkeypatch.setenv("TRADER_TORCH_THREADS", value)
    with pytest.raises(errors.ConfigError, match="TRADER_TORCH_THREADS"):
        default_torch_threads()
