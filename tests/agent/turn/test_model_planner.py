"""The trader model plans (its trained `plan` call) and the safety layer stays after it, on real tools.

The model's replies are scripted (they only decide which plan is made); the request, the parsing, the review,
the tools, the chain and the journal are the real ones. Every plan says where it came from.
"""

from __future__ import annotations

import pytest

from finetune.plan_call import PLAN_TOOL, plan_messages

pytestmark = pytest.mark.chain


class ScriptedAsk:
    """A planning backend's `ask` (finetune.llm_backends.runtime.ChatFn) whose replies are a script; every request is recorded."""

    def __init__(self, *replies: str):
        self.replies, self.requests = list(replies), []

    def __call__(self, messages, tools=None, **overrides):
        self.requests.append((messages, tools, overrides))
        return self.replies.pop(0)


def call(**arguments) -> str:
    import json

    return f'<tool_call>\n{json.dumps({"name": "plan", "arguments": arguments})}\n</tool_call>'


@pytest.fixture
def planning_agent(make_agent):
    def make(*replies, confirm=None, answers=()):
        agent, _ = make_agent(*answers, confirm=confirm)
        ask = ScriptedAsk(*replies)
        agent.llm.current.ask = ask  # this backend now plans as trader-qwen-rl does
        return agent, ask
    return make


def _names(result):
    return [c.name for c in result.tool_calls]


def test_the_model_plans_with_the_trained_request(planning_agent):
    agent, ask = planning_agent(call(intent="price"))
    result = agent.turn("what is the ETH price?")
    assert result.plan == {"intent": "price", "source": "model"} and _names(result) == ["get_price"]
    messages, tools, overrides = ask.requests[0]
    assert messages == plan_messages("what is the ETH price?", "no pending proposal") and tools == [PLAN_TOOL]
    assert overrides == {}  # greedy, as evaluated
    assert "plan" in result.public() and result.public()["plan"]["source"] == "model"


def test_a_question_the_model_plans_as_a_trade_is_vetoed_even_with_yes(planning_agent):
    agent, _ = planning_agent(call(intent="propose", side="sell", amount=2, asset="ETH"), confirm=lambda p: True)
    agent.tools.auto_confirm = True  # the scripted "--yes"
    result = agent.turn("should I sell 2 ETH?")
    assert result.plan["source"] == "model+safety-veto" and result.plan["intent"] != "propose"
    assert "propose_swap" not in _names(result) and "execute_swap" not in _names(result) and not result.executed
    assert result.safety and "not an order" in result.safety


def test_a_negation_planned_as_a_trade_never_trades(planning_agent):
    agent, _ = planning_agent(call(intent="propose", side="sell", amount=0.5, asset="ETH"))
    result = agent.turn("do not sell 0.5 ETH")
    assert result.plan["source"] == "model+safety-veto" and not {"propose_swap", "execute_swap"} & set(_names(result))


def test_an_explicit_order_the_model_missed_is_proposed_and_waits_for_confirmation(planning_agent):
    agent, _ = planning_agent(call(intent="chat"))
    result = agent.turn("sell 0.05 ETH")
    assert result.plan["source"].startswith("rules-override: model planned chat")
    assert result.plan["intent"] == "propose" and result.plan["amount"] == 0.05
    assert _names(result) == ["propose_swap"] and not result.executed  # nobody said yes


def test_the_users_words_fix_the_models_trade_arguments(planning_agent):
    agent, _ = planning_agent(call(intent="propose", side="sell", amount=0.5, asset="ETH"))
    result = agent.turn("sell 0.05 ETH")
    assert result.plan["source"] == "model+order-as-written" and result.plan["amount"] == 0.05
    assert result.tool_calls[0].args["amount"] == 0.05


def test_an_order_planned_under_the_messages_grammar_is_the_models_own_plan(planning_agent):
    """An in-process GGUF planner is asked under the grammar of the message (finetune.plan_args): the only
    amount, side and asset it can write for "sell 0.3 eth" are the ones written; that plan runs as the model's."""
    from finetune.plan_args import plan_grammar

    agent, ask = planning_agent(call(intent="propose", side="sell", amount=0.3, asset="ETH"))
    ask.grammars = True  # as finetune.llm_backends.runtime's gguf `ask`
    result = agent.turn("sell 0.3 eth")
    grammar = ask.requests[0][2]["grammar"]
    assert grammar == plan_grammar("sell 0.3 eth") and 'amount ::= "0.3"\n' in grammar
    assert 'side ::= "\\"sell\\""\n' in grammar and "USDC" not in grammar
    assert result.plan == {"intent": "propose", "side": "sell", "amount": 0.3, "asset": "ETH", "source": "model"}
    assert result.tool_calls[0].name == "propose_swap" and result.tool_calls[0].args["amount"] == 0.3


def test_a_question_under_the_grammar_still_never_trades(planning_agent):
    agent, ask = planning_agent(call(intent="propose", side="sell", amount=0.3, asset="ETH"), confirm=lambda p: True)
    ask.grammars = True
    agent.tools.auto_confirm = True
    result = agent.turn("should I sell 0.3 eth?")
    assert "grammar" in ask.requests[0][2] and result.plan["source"] == "model+safety-veto"
    assert not {"propose_swap", "execute_swap"} & set(_names(result)) and not result.executed


def test_an_unparsable_reply_is_retried_once_on_the_same_backend_then_rules_plan(planning_agent):
    agent, ask = planning_agent("I think you want the price.", "<tool_call>{not json</tool_call>")
    result = agent.turn("what is the ETH price?")
    assert len(ask.requests) == 2 and ask.requests[1][2]["temperature"] > 0  # a sampled retry, not the same reply
    assert result.plan["source"] == "rules-fallback: model reply unparsable twice"
    assert _names(result) == ["get_price"]


def test_a_retry_that_parses_is_the_models_plan(planning_agent):
    agent, ask = planning_agent("price please", call(intent="portfolio"))
    result = agent.turn("show my balances")
    assert result.plan == {"intent": "portfolio", "source": "model (retried)"} and _names(result) == ["get_portfolio"]


def test_a_malformed_forced_call_is_retried_on_the_same_backend_before_falling_back(make_agent):
    notes: list[str] = []
    # first reply: prose instead of the forced call; second: the call
    agent, chat = make_agent("the price, I guess", {"intent": "price"}, "ETH is worth a lot.", notes=notes)
    result = agent.turn("what is the ETH price?")
    assert result.plan["source"] == "model" and _names(result) == ["get_price"]
    assert not any("falling back" in n for n in notes)


def test_the_trader_model_is_asked_with_the_policys_observation(chain_home):
    from agent.turn.tools import ToolSession

    tools = ToolSession()
    sig = tools.call("get_rl_signal").value
    assert sig.observation  # the replica carries real history: the policy sees the chain's latest bar
    opinion = tools.call("ask_trader_model").value
    # the question describes what the policy saw there, and says which bar
    assert opinion.question.startswith("What the policy sees at the last bar:")
    assert "returns of the last 8 bars" in opinion.question and "wallet " in opinion.question
    assert f"{sig.price:,.2f}" in opinion.question and "chain v2 swaps" in opinion.bar and "bar of" in opinion.bar
    assert opinion.answer and "SmolLM2" in opinion.model  # tests never load the 491 MB Qwen
