"""The rl commands' bad-input corpus: each case is refused in one `error:` line (exit 1), never a traceback
and never silently accepted."""

import json
import os

import pytest

from tests.conftest import run_trader
from trader_core.errors import DataError
from trader_core.market_data import load_candles

pytestmark = pytest.mark.slow
SWAPS_HEADER = "timestamp,sqrt_price_x96,amount0"
GOOD_SWAP = "2025-01-01T00:00:00Z,3961408125713216879677197516800,1000000000000000000"  # 2500 USDC per ETH


def run_cli(*args, home, env=None):
    full_env = {**os.environ, "TRADER_HOME": str(home), **(env or {})}
    return run_trader(args, env=full_env)


def assert_one_line_error(res, needle):
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert res.stderr.startswith("error: ") and needle in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("setting, value, needle", [
    ("torch_threads", 0, "invalid setting 'torch_threads'"),
    ("learning_rate", -1, "invalid setting 'learning_rate'"),
    ("gamma", 5, "invalid setting 'gamma'"),
    ("batch_size", 0, "invalid setting 'batch_size'"),
    ("buffer_size", -1, "invalid setting 'buffer_size'"),
    ("exploration_final_eps", 7, "invalid setting 'exploration_final_eps'"),
    ("net_arch", [], "invalid setting 'net_arch'"),
])
def test_nonsense_training_configs_are_refused(tmp_path, setting, value, needle):
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({setting: value}))
    res = run_cli("rl", "train", "--out", str(tmp_path / "run"), "--config", str(config), home=tmp_path)
    assert_one_line_error(res, needle)
    assert not (tmp_path / "run" / "model.zip").exists()


def test_an_unknown_action_set_is_one_line(tmp_path):
    res = run_cli("rl", "train", "--out", str(tmp_path / "run"), "--action-set", "bogus", home=tmp_path)
    assert_one_line_error(res, "invalid setting 'env.action_set'")


@pytest.mark.parametrize("value", ["abc", "0", "-3"])
def test_a_bad_torch_thread_count_in_the_environment_is_one_line(tmp_path, value):
    res = run_cli("rl", "signal", env={"TRADER_TORCH_THREADS": value}, home=tmp_path)
    assert_one_line_error(res, "TRADER_TORCH_THREADS")


@pytest.mark.parametrize("args, needle", [
    (["rl", "backtest", "--start", "nan"], "bad date 'nan'"),
    (["rl", "backtest", "--seeds", "99"], "has no seed 99"),
    (["rl", "signal", "--position", "-1"], "long-only"),
    (["rl", "signal", "--position", "1.5"], "out of range"),
    (["rl", "signal", "--now", "not-a-date"], "bad date"),
])
def test_bad_command_arguments_are_one_line(tmp_path, args, needle):
    assert_one_line_error(run_cli(*args, home=tmp_path), needle)


@pytest.mark.parametrize("command", ["backtest", "train"])
def test_out_that_is_a_file_or_under_a_missing_folder_is_one_line(tmp_path, command):
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    assert_one_line_error(run_cli("rl", command, "--out", str(a_file), home=tmp_path), "is an existing file")
    missing = tmp_path / "missing" / "dir"
    assert_one_line_error(run_cli("rl", command, "--out", str(missing), home=tmp_path), "does not exist")
    assert a_file.read_text() == "x" and not missing.parent.exists()


SWAP_CASES = [
    ([SWAPS_HEADER], "only a header"),
    ([SWAPS_HEADER, GOOD_SWAP, "2025-01-01T01:00:00Z,12.5x,1000"], "row 3: sqrt_price_x96 must be an integer"),
    ([SWAPS_HEADER, GOOD_SWAP, "2025-01-01T01:00:00Z,,1000"], "row 3: sqrt_price_x96 must be an integer, got empty"),
    ([SWAPS_HEADER, GOOD_SWAP, "2025-01-01T01:00:00Z,3961408125713216879677197516800,1.5"],
     "row 3: amount0 must be an integer"),
    ([SWAPS_HEADER, "2025-01-01T01:00:00Z,3961408125713216879677197516800,"], "row 2: amount0 must be an integer"),
]


@pytest.mark.parametrize("lines, needle", SWAP_CASES)
def test_bad_swap_event_csvs_are_a_data_error(tmp_path, lines, needle):
    path = tmp_path / "swaps.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=needle):
        load_candles(path)


@pytest.mark.parametrize("command", ["signal", "train"])
def test_bad_swap_event_csvs_are_one_line_in_the_cli(tmp_path, command):
    path = tmp_path / "swaps.csv"
    path.write_text("\n".join(SWAP_CASES[2][0]) + "\n")
    args = ["rl", command, "--data", str(path)] + (["--out", str(tmp_path / "run")] if command == "train" else [])
    assert_one_line_error(run_cli(*args, home=tmp_path), "must be an integer, got empty")
