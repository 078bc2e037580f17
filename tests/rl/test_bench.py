"""`trader bench train` takes FastDQN's speedup apart; each figure is a real training rate in this process."""

import pytest


@pytest.mark.slow
# the peer, gym-anytrading's stocks-v0, hands out one observation array for every step; ours passes check_env
@pytest.mark.filterwarnings("ignore:.*share an object:UserWarning")
def test_bench_train_reports_each_setup_side_by_side():
    from rl.bench import bench_train

    res = bench_train(timesteps=600, rounds=1)
    for key in ("sb3_defaults_anytrading", "sb3_defaults", "sb3_same_setup", "ours"):
        assert res[key] > 0, key
    assert res["fast_dqn_gain"] == pytest.approx(res["ours"] / res["sb3_same_setup"])
    assert res["ratio"] == pytest.approx(res["env_gain"] * res["batching_gain"] * res["fast_dqn_gain"])
    assert res["n_envs"] == 16 and res["batch_size"] == 64 and res["utd"] == 0.25
