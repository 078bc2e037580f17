"""rl.online: prioritised replay (hand-computed probabilities and IS weights) and the SQLite replay store."""

from __future__ import annotations

import numpy as np
import pytest

from rl.online.per import PrioritizedReplay, SumTree
from rl.online.replay_store import Fill, ReplayStore
from trader_core.errors import StorageError


def test_sum_tree_prefix_search_and_total():
    t = SumTree(5)
    for i, v in enumerate([1.0, 2.0, 0.0, 3.0, 4.0]):
        t.set(i, v)
    assert t.total == pytest.approx(10.0)
    # prefix sums: [0,1) -> 0, [1,3) -> 1, leaf 2 has no mass, [3,6) -> 3, [6,10) -> 4
    assert [t.find(m) for m in (0.0, 0.99, 1.0, 2.99, 3.0, 5.99, 6.0, 9.99)] == [0, 0, 1, 1, 3, 3, 4, 4]
    t.set(3, 0.5)
    assert t.total == pytest.approx(7.5)


def test_probabilities_and_weights_by_hand():
    # priorities 1, 2, 4 with alpha 0.5: p^a = 1, sqrt2, 2; sum = 3 + sqrt2
    per = PrioritizedReplay(8, alpha=0.5, beta=1.0)
    for key, p in zip("abc", (1.0, 2.0, 4.0)):
        per.add(key, p)
    z = 3.0 + np.sqrt(2.0)
    expect = np.array([1.0, np.sqrt(2.0), 2.0]) / z
    np.testing.assert_allclose(per.probabilities(), expect)
    s = per.sample(3, np.random.default_rng(0))
    # weights (N P(i))^-beta / max_j (N P(j))^-beta = P_min / P(i) with beta = 1
    np.testing.assert_allclose(s.weights, expect.min() / s.probabilities)
    assert s.weights.max() <= 1.0 + 1e-12
    # beta = 0.5: weight of "c" = sqrt(P_a / P_c) = sqrt(1/2)
    per.beta = 0.5
    c_only = per.sample(1, np.random.default_rng(0), beta=0.5)
    i = {"a": 0, "b": 1, "c": 2}[c_only.keys[0]]
    assert c_only.weights[0] == pytest.approx(np.sqrt(expect[0] / expect[i]))


def test_sampling_frequencies_follow_priorities():
    per = PrioritizedReplay(4, alpha=1.0, beta=0.4)
    for key, p in zip("wxyz", (1.0, 1.0, 2.0, 4.0)):
        per.add(key, p)
    rng = np.random.default_rng(1)
    counts = {k: 0 for k in "wxyz"}
    for _ in range(500):
        for k in per.sample(8, rng).keys:
            counts[k] += 1
    freq = np.array([counts[k] for k in "wxyz"]) / 4000
    np.testing.assert_allclose(freq, [0.125, 0.125, 0.25, 0.5], atol=0.03)


def test_new_items_enter_at_max_priority_and_td_updates_priorities():
    per = PrioritizedReplay(4, alpha=1.0)
    per.add("a", 5.0)
    per.add("b")  # max priority so far: 5
    np.testing.assert_allclose(per.probabilities(), [0.5, 0.5])
    per.update_from_td([0, 1], [-1.0, 3.0])  # |td| + eps
    np.testing.assert_allclose(per.probabilities(), np.array([1.001, 3.001]) / 4.002)


def test_full_buffer_overwrites_oldest_and_forgets_its_key():
    per = PrioritizedReplay(2, alpha=1.0)
    for k in "abc":
        per.add(k, 1.0)
    assert len(per) == 2 and set(per.slot_of) == {"b", "c"}
    with pytest.raises(ValueError):
        per.add("d", float("nan"))


def _fill(price=100.0):
    return Fill("buy", price, price * 1.003, 10.0, fee_usd=0.03)


def test_store_keys_are_idempotent_and_complete_once(tmp_path):
    st = ReplayStore(tmp_path / "r.sqlite")
    assert st.record_decision("run", 0, [1, 2], 1, _fill(), 1000, 100.0, 1.0, 50.0)
    assert not st.record_decision("run", 0, [9, 9], 0, _fill(), 1000, 100.0, 1.0, 50.0)  # a restart's retry
    assert st.count("run") == 1
    assert st.ready_ids() == []  # no next observation yet
    assert st.complete("run", 0, 0.5, [3, 4])
    assert not st.complete("run", 0, 9.9, [0, 0])
    b = st.batch(st.ready_ids())
    np.testing.assert_array_equal(b.obs[0], [1, 2])
    np.testing.assert_array_equal(b.next_obs[0], [3, 4])
    assert b.rewards[0] == pytest.approx(0.5) and b.actions[0] == 1
    last = st.last_decision("run")
    assert (last.tick, last.wallet_eth, last.complete) == (0, 1.0, True)
    assert st.fills("run")[0].slippage_bps == pytest.approx(30.0)


def test_store_holds_out_the_gate_window_and_skips_unusable_rows(tmp_path):
    st = ReplayStore(tmp_path / "r.sqlite")
    for tick in range(4):
        st.record_decision("run", tick, [tick], 0, Fill.none(1.0), 3600 * tick, 1.0, 0.0, 1.0, usable=tick != 1)
        st.complete("run", tick, 0.0, [tick + 1])
    st.add_history("run", np.zeros((2, 1)), np.zeros(2), np.zeros(2), np.ones((2, 1)), np.zeros(2))
    ids = st.ready_ids(0, live_before_bar=3600 * 2)  # bars 2 and 3 are the gate's window
    sources = [r[0] for r in st.db.execute(f"SELECT source FROM transitions WHERE id IN ({','.join(map(str, ids))})")]
    assert sorted(sources) == ["history", "history", "live"]  # tick 0 only: tick 1 had no observation
    assert st.first_pending_id(0, 3600 * 2) == 3  # tick 2's row: the learner resumes there once the window moves


def test_corrupt_store_is_one_storage_error(tmp_path):
    bad = tmp_path / "replay.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="unusable"):
        ReplayStore(bad)


def test_fill_slippage_sign():
    assert Fill("sell", 100.0, 99.7, 100.0).slippage_bps == pytest.approx(30.0)
    assert Fill("buy", 100.0, 99.0, 100.0).slippage_bps == pytest.approx(-100.0)  # better than quoted
    assert Fill.none(5.0).slippage_bps == 0.0


def test_learner_ingest_keeps_priorities_of_rows_seen_before_a_held_out_one(tmp_path):
    from rl.online.learner import Learner, LearnerConfig

    st = ReplayStore(tmp_path / "r.sqlite")
    for tick in range(3):  # live rows first: tick 2 is inside the gate window
        st.record_decision("run", tick, [tick, 0], 0, Fill.none(1.0), 3600 * tick, 1.0, 0.0, 1.0)
        st.complete("run", tick, 0.0, [tick + 1, 0])
    st.add_history("run", np.zeros((4, 2)), np.zeros(4), np.zeros(4), np.ones((4, 2)), np.zeros(4))
    lrn = Learner(st, 2, 2, LearnerConfig(batch_size=2, capacity=64, history=0), tmp_path / "l.pt")
    assert len(lrn.per) == 0  # nothing before the first ingest names the held-out window
    assert lrn.ingest(live_before_bar=3600 * 2) == 6 and len(lrn.per) == 6
    lrn.per.update(range(6), [0.5] * 6)
    lrn.ingest(live_before_bar=3600 * 2)  # the history after the held-out row comes back: already known
    np.testing.assert_allclose(lrn.per.probabilities(), [1 / 6] * 6)
    assert lrn.ingest(live_before_bar=None) == 1 and len(lrn.per) == 7  # the window moved on: tick 2 joins


def test_gate_window_round_trips_through_its_file(tmp_path):
    from rl.envs.data import load_candles
    from rl.online.worker import read_window, write_window

    (tmp_path / "learn").mkdir()
    candles = load_candles("chainlink-eth-1h")
    write_window(tmp_path, candles, 100)
    w = read_window(tmp_path)
    assert len(w) == 100 and w.interval_s == candles.interval_s and w.volume is None
    np.testing.assert_array_equal(w.close, candles.close[-100:])
    np.testing.assert_array_equal(w.timestamps, candles.timestamps[-100:])


def test_vectorised_tree_matches_the_scalar_one():
    rng = np.random.default_rng(3)
    a, b = SumTree(37), SumTree(37)
    values = rng.uniform(0, 2, 37) * (rng.random(37) > 0.2)
    for i, v in enumerate(values):
        a.set(i, v)
    b.set_many(np.arange(37), values)
    assert a.total == pytest.approx(b.total)
    np.testing.assert_allclose(a._tree, b._tree)
    masses = rng.uniform(0, a.total, 200)
    np.testing.assert_array_equal(b.find_many(masses), [a.find(m) for m in masses])
    b.set_many(np.array([3, 30]), np.array([5.0, 0.0]))
    a.set(3, 5.0)
    a.set(30, 0.0)
    np.testing.assert_allclose(a._tree, b._tree)
