"""One story in `trader demo`: the wallet, the observation the policy saw, the trader model's question and the
agent's lines name the same position and prices, and a HOLD nobody voted never reads "agreement 0%".

The demo runs for real (quick mode: its own replica chain, the bundled policy, the auto model). The checks hold
whether the fresh chain's bars cover the policy's look-back (it votes) or not (it holds with the reason).
"""

from __future__ import annotations

import io

import pytest

from agent.market import PolicyView, position_fraction, vote_words, wallet_words
from finetune.formats import TraderState, position_word, question


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from rich.console import Console

    from agent.console.demo import run_demo

    console = Console(file=io.StringIO(), width=400, highlight=False, record=True)
    home = tmp_path_factory.mktemp("demo_story")
    story = run_demo(quick=True, home=home, console=console)
    return story, console.export_text(), home


@pytest.mark.chain
@pytest.mark.llm
def test_demo_ends_with_a_confirmed_swap_and_stops_its_chain(demo, monkeypatch):
    from onchain.api import chain_status

    _, text, home = demo
    for expected in ("backtest", "anvil replica up", "✓ get_price", "Execute this swap? [y/N] y", "confirmed",
                     '"source": "', "the trader model, asked the seed's question",
                     "What the policy sees at the last bar:", "parsed: ", "chain stopped"):
        assert expected in text, expected
    monkeypatch.setenv("TRADER_HOME", str(home))
    info = chain_status()
    assert info is None or not info.running


def views(story) -> list[PolicyView]:
    shown = [c.value for c in story.calls if isinstance(c.value, PolicyView)]
    return shown + ([story.opinion.view] if story.opinion and story.opinion.view else [])


@pytest.mark.chain
@pytest.mark.llm
def test_wallet_observation_and_question_tell_one_story(demo):
    story, text, _ = demo
    opinion, wallet = story.opinion, story.portfolio
    assert opinion is not None and opinion.view is not None and wallet is not None, text[-3000:]
    view = opinion.view
    # the wallet the policy was given is the chain wallet, read after the demo's swap
    assert view.wallet == "chain wallet"
    assert view.eth == pytest.approx(wallet.eth + wallet.weth, abs=1e-9)
    assert view.usdc == pytest.approx(wallet.usdc, abs=1e-6)
    # its position feature comes from that wallet at the bar's price
    assert view.position == pytest.approx(position_fraction(view.eth, view.usdc, view.price), abs=1e-4)
    assert view.observation, "the question shows the policy's observation of the bar"
    assert view.observation["position"] == (1.0 if view.position >= 0.5 else 0.0)
    # the question: the same balances, the same price, the same position in words
    q = opinion.question
    assert f"I currently hold {view.eth:.4f} ETH and {view.usdc:,.2f} USDC" in q
    assert f"ETH price is ${view.price:,.2f}" in q
    assert f"- wallet {position_word(view.observation, view.position)};" in q
    if 0.005 < view.position < 0.995:  # a mixed wallet is never "all USDC" nor simply "holding ETH"
        assert "flat (all USDC)" not in q and f"{100 * view.position:.0f}% in ETH" in q
    # the chain's price agrees with the bar's within rounding (the swap moved a 5,000 ETH pool a little)
    assert wallet.price == pytest.approx(view.price, rel=0.01)
    # and the demo printed that one story
    assert f"wallet (chain wallet): {wallet_words(view)}" in text
    assert q in text


@pytest.mark.chain
@pytest.mark.llm
def test_words_match_numbers_for_every_signal_shown(demo):
    story, text, _ = demo
    shown = views(story)
    assert shown, "the demo shows the RL signal"
    assert "agreement 0%" not in text  # a voted action always has some agreement; 0% would mean no vote
    for view in shown:
        if view.voted:
            assert view.agreement > 0 and f"agreement {view.agreement:.0%}" in text
        else:
            assert view.action == "HOLD" and view.reason and vote_words(view) in text
            assert vote_words(view).startswith("no vote: ")
        if view.eth is not None:
            assert view.position == pytest.approx(position_fraction(view.eth, view.usdc, view.price), abs=1e-4)


def test_a_mixed_wallet_is_named_as_it_is_and_as_the_policy_reads_it():
    flat = {"position": 0.0, "ret_0": 0.1}
    assert position_word(flat) == "flat (all USDC)"  # the training text (rollouts carry no live wallet)
    assert position_word(flat, 0.0) == "flat (all USDC)"
    assert position_word({"position": 1.0}, 1.0) == "holding ETH"
    assert position_word(flat, 0.45) == "45% in ETH (the policy, all in or all out, reads it as flat)"
    assert position_word({"position": 1.0}, 0.62) == "62% in ETH (the policy, all in or all out, reads it as holding ETH)"
    live = TraderState(price=2000.0, price_change=0.0, volatility=0.01, eth=9.5, usdc=25_000.0, observation=flat)
    assert "wallet flat (all USDC)" in question(live)  # no live share given: the rollout's wording, unchanged
    mixed = live.model_copy(update={"wallet_in_eth": 19_000 / 44_000})
    assert "wallet 43% in ETH (the policy, all in or all out, reads it as flat)" in question(mixed)
    assert "I currently hold 9.5000 ETH and 25,000.00 USDC" in question(mixed)


def test_a_hold_forced_by_short_history_says_no_vote_and_a_voted_one_its_agreement():
    from agent.turn.facts import fact
    from agent.market import wallet_signal
    from agent.turn.tools import ToolCall
    from rl.policy import Policy
    from trader_core.feed import MarketSnapshot
    from trader_core.market_data import DEFAULT_DATASET, load_candles

    policy = Policy.load("default")
    candles = load_candles(DEFAULT_DATASET)
    closed = int(candles.timestamps[-1]) + int(candles.interval_s or 3600)  # the clock at the last bar's close
    n = len(candles)
    short = MarketSnapshot(candles.slice(n - 5, n), "five live bars", closed, live_bars=5)
    view = wallet_signal(policy, short, eth=9.4999, usdc=26_140.0, wallet="chain wallet")
    assert (view.action, view.voted, view.agreement) == ("HOLD", False, 0.0)
    words = fact(ToolCall(name="get_rl_signal", args={}, value=view))
    assert "no vote: look-back not covered" in words and "agreement" not in words
    assert f"{view.eth:.4f} ETH + 26,140.00 USDC" in words and f"{100 * view.position:.0f}% in ETH" in words

    full = wallet_signal(policy, MarketSnapshot(candles, "history", closed), eth=9.4999, usdc=26_140.0,
                         wallet="chain wallet")
    assert full.voted and full.agreement > 0 and full.observation
    words = fact(ToolCall(name="get_rl_signal", args={}, value=full))
    assert f"agreement {full.agreement:.0%}" in words and "no vote" not in words
    assert position_word(full.observation, full.position) in words
