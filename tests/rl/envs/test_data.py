import numpy as np
import pytest

from rl.envs.data import DATASETS, load_candles, segments, split_by_dates
from trader_core.errors import DataError, TraderError

GOOD = "timestamp,open,high,low,close,volume\n" + "\n".join(
    f"2024-01-01T{h:02d}:00:00Z,{100 + h},{102 + h},{99 + h},{101 + h},{5 + h}" for h in range(10))


@pytest.mark.parametrize("name", list(DATASETS))
def test_bundled_datasets_load_and_validate(name):
    c = load_candles(name)
    assert len(c) > 300
    assert np.all(np.diff(c.timestamps) > 0)
    assert np.all(c.high >= np.maximum(c.open, c.close) * (1 - 1e-9))
    assert np.all(c.low <= np.minimum(c.open, c.close) * (1 + 1e-9))


def test_timestamp_formats_agree(tmp_path):
    iso = tmp_path / "iso.csv"
    iso.write_text(GOOD)
    base = load_candles(iso)
    for scale, name in ((1, "s"), (1000, "ms")):
        lines = GOOD.splitlines()
        rows = [lines[0]] + [",".join([str(int(base.timestamps[i]) * scale)] + line.split(",")[1:])
                             for i, line in enumerate(lines[1:])]
        path = tmp_path / f"{name}.csv"
        path.write_text("\n".join(rows))
        assert np.array_equal(load_candles(path).timestamps, base.timestamps)
    assert base.interval_s == 3600 and base.volume is not None


@pytest.mark.parametrize("mutate, expected", [
    (lambda rows: rows[:3] + [rows[2]] + rows[4:], "row 4: duplicate timestamp"),
    (lambda rows: [rows[0], rows[2], rows[1]] + rows[3:], "row 3: out-of-order timestamp"),
    (lambda rows: rows[:4] + [rows[4].replace(",103,", ",-103,", 1)] + rows[5:], "row 5: open must be a positive finite number, got -103"),
    (lambda rows: rows[:2] + [rows[2].replace(",102,", ",nan,", 1)] + rows[3:], "row 3: close must be a positive finite number, got nan"),
    (lambda rows: rows[:6] + ["2024-01-01T05:00:00Z,105,100,104,106,5"] + rows[7:], "row 7: high 100.0 is below"),
    (lambda rows: rows[:6] + ["2024-01-01T05:00:00Z,105,110,106,106,5"] + rows[7:], "row 7: low 106.0 is above"),
    (lambda rows: rows[:3] + ["yesterday,1,2,1,1,1"] + rows[4:], "row 4: cannot parse timestamp"),
    (lambda rows: ["timestamp,open,high,close"] + [",".join(r.split(",")[:3] + [r.split(",")[4]]) for r in rows[1:]],
     "missing column(s) low"),
])
def test_bad_files_give_one_clear_error(tmp_path, mutate, expected):
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(mutate(GOOD.splitlines())))
    with pytest.raises(DataError) as err:
        load_candles(path)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)
    assert isinstance(err.value, (TraderError, ValueError))


def test_unknown_dataset_names_the_choices():
    with pytest.raises(DataError, match="chainlink-eth-1h"):
        load_candles("no-such-dataset")


def test_swap_events_become_candles_with_the_sqrt_price_formula(tmp_path):
    q96 = 2**96
    # price 2500 USDC/ETH -> sqrtPriceX96 = sqrt(2500e-12) * 2**96
    def sqrtp(p):
        return int((p / 1e12) ** 0.5 * q96)

    rows = ["timestamp,amount0,sqrt_price_x96",
            f"3600,-1000000000000000000,{sqrtp(2500)}", f"3700,500000000000000000,{sqrtp(2600)}",
            f"3800,-250000000000000000,{sqrtp(2400)}", f"10900,100000000000000000,{sqrtp(2550)}"]
    path = tmp_path / "swaps.csv"
    path.write_text("\n".join(rows))
    c = load_candles(path, interval="1h")
    assert list(c.timestamps) == [3600, 7200, 10800]
    assert c.open[0] == pytest.approx(2500, rel=1e-9) and c.close[0] == pytest.approx(2400, rel=1e-9)
    assert c.high[0] == pytest.approx(2600, rel=1e-9) and c.low[0] == pytest.approx(2400, rel=1e-9)
    assert c.volume[0] == pytest.approx(1.75)
    assert c.close[1] == c.open[1] == c.close[0] and c.volume[1] == 0  # empty hour carries the price
    assert c.close[2] == pytest.approx(2550, rel=1e-9)


def test_gaps_split_segments():
    c = load_candles("univ3-polygon-eth-1h")
    segs = segments(c)
    assert len(segs) == 4
    for a, b in segs:
        assert np.all(np.diff(c.timestamps[a:b]) <= 3 * 3600)


def test_splits_leave_a_lookback_gap_and_do_not_overlap(eth_candles):
    sp = split_by_dates(eth_candles, "2023-10-01", "2023-12-01", gap=72)
    assert sp.train[1] + 72 == sp.val[0] and sp.val[1] + 72 == sp.test[0]
    assert eth_candles.timestamps[sp.train[1] - 1] < eth_candles.timestamps[sp.val[0]]
    assert eth_candles.timestamps[sp.train[1]] >= 1696118400  # 2023-10-01
    with pytest.raises(DataError, match="must come after"):
        split_by_dates(eth_candles, "2023-12-01", "2023-10-01")
