"""Answers that misquote the tools are replaced by the tools' facts: every number, venue, time, hash and claimed
trade an answer states is checked against the tool results (the issue's cases: a v2 pool price of 1589.33 told
as "1589.32 USDC on v4" with invented history; a $12,479.65 portfolio told as "$17,025")."""

from __future__ import annotations

import pytest

from agent.turn.grounding import check_answer
from agent.turn.tools import ToolCall, to_json
from onchain.models import Portfolio, PriceQuote

ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def call(name: str, value) -> ToolCall:
    return ToolCall(name=name, args={}, result=to_json(value), value=value)


PRICE = call("get_price", PriceQuote(venue="v2", price=1589.3312))
PORTFOLIO = call("get_portfolio", Portfolio(address=ADDRESS, eth=3.5, weth=0.0, usdc=6917.0, price=1589.9,
                                            value_usd=12479.65))


@pytest.mark.parametrize("answer", [
    "ETH is 1589.33 USDC on v2.", "ETH trades at $1,589.33 on Uniswap v2.", "About 1,589 USDC per ETH.",
    "Roughly 1,590 USDC.", "ETH is 1589.3 USDC.",
])
def test_faithful_answers_pass(answer):
    assert check_answer(answer, "what is the ETH price?", [PRICE]).ok


@pytest.mark.parametrize("answer, wrong", [
    ("ETH is 1589.32 USDC on v4.", ["1589.32", "v4"]),  # the case
    ("ETH is 1589.33 USDC on v2, up 4% since yesterday.", ["4%"]),  # invented history
    ("ETH is 1,600 USDC.", ["1,600"]),
    ("ETH is 1589.33 USDC, last checked 2024-01-29 10:00.", ["2024-01-29", "10:00"]),
    ("ETH is 1589.33 USDC. I sold 0.5 ETH for you.", ["claims a trade"]),
    ("ETH is 1589.33 USDC, see tx 0xabcdef1234567890.", ["0xabcdef1234567890"]),
])
def test_misquotes_are_caught_and_named(answer, wrong):
    report = check_answer(answer, "what is the ETH price?", [PRICE])
    assert not report.ok
    for fragment in wrong:
        assert any(fragment in p for p in report.problems), (fragment, report.problems)


def test_a_portfolio_value_must_be_the_tools_value():
    assert not check_answer("Your portfolio is worth $17,025.", "portfolio?", [PORTFOLIO]).ok  # the case
    assert check_answer("Your portfolio is worth $12,479.65 (3.5 ETH and 6,917 USDC).", "portfolio?", [PORTFOLIO]).ok
    assert check_answer("About $12.5k in total.", "portfolio?", [PORTFOLIO]).ok
    assert not check_answer("About $13k in total.", "portfolio?", [PORTFOLIO]).ok


def test_numbers_from_the_question_and_denied_trades_are_allowed():
    assert check_answer("I did not sell 2 ETH; ETH is 1589.33 USDC.", "should I sell 2 ETH?", [PRICE]).ok
    assert check_answer("The proposal was not executed.", "sell", [PRICE]).ok


@pytest.mark.chain
def test_a_misquoting_answer_on_the_replica_is_replaced_by_the_tool_facts(make_agent):
    from onchain.api import connect, get_price

    price = get_price(connect()).price
    misquote = f"ETH is {price - 0.01:.2f} USDC on v4, up 3% over the last week."
    agent, _ = make_agent({"intent": "price"}, misquote)
    result = agent.turn("what is the ETH price?")
    assert result.answer == f"ETH is {price:.2f} USDC on v2."  # the tools' fact, verbatim
    assert "v4" not in result.answer and any("v4" in p for p in result.corrections)
    assert any("3%" in p for p in result.corrections)


@pytest.mark.chain
def test_an_inflated_portfolio_value_on_the_replica_is_replaced(make_agent):
    agent, _ = make_agent({"intent": "portfolio"}, "Your portfolio is worth $17,025.")
    result = agent.turn("how much is my portfolio worth?")
    value = result.tool_calls[0].result["value_usd"]
    assert "17,025" not in result.answer and f"{value:,.2f}" in result.answer
    assert result.corrections


@pytest.mark.chain
def test_a_faithful_answer_is_kept_word_for_word(make_agent):
    from onchain.api import connect, get_price

    price = get_price(connect()).price
    answer = f"One ETH costs {price:,.2f} USDC on the v2 pool right now."
    agent, _ = make_agent({"intent": "price"}, answer)
    result = agent.turn("price?")
    assert result.answer == answer and result.corrections == []
