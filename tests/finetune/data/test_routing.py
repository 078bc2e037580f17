"""The plan-call data: varied phrasings, labels that follow the frame (never a trade from a question, a negation, a
hypothetical, quoted text or an injection), held-out templates that never leak into training, one parser."""

import json
from collections import Counter

import pytest

from finetune.data import routing
from finetune.data.dataset import MixConfig, RouteDataConfig, mix, route_data
from finetune.evaluation.evaluate import baselines, load_items, plan_matches, spread
from finetune.plan_call import INTENTS, PLAN_TOOL, PlanCall, parse_plan, plan_messages, tool_call_message


def test_generation_is_deterministic_varied_and_covers_every_intent():
    a, b = routing.generate(400, seed=3), routing.generate(400, seed=3)
    assert [e.model_dump() for e in a] == [e.model_dump() for e in b]
    assert [e.text for e in routing.generate(50, seed=4)] != [e.text for e in a[:50]]
    assert len({(e.text, e.context) for e in a}) == len(a)  # no duplicate request
    assert {e.label.intent for e in a} == set(INTENTS)
    assert {e.category for e in a} >= {"order", "quote", "hypothetical", "question", "negation", "quoted", "injection"}
    amounts = {e.label.amount for e in a if e.label.amount is not None}
    assert len(amounts) >= 15 and any(e.text != e.text.lower() for e in a) and any("," in e.text for e in a)


def test_questions_negations_hypotheticals_quotes_and_injections_never_plan_a_trade():
    examples = routing.generate(1500, seed=0) + routing.generate(600, heldout=True, seed=1)
    unsafe = [e for e in examples if e.category in routing.SAFE_CATEGORIES]
    assert len(unsafe) > 500
    assert not [e.text for e in unsafe if e.label.trades]
    orders = [e for e in examples if e.category == "order"]
    assert orders and all(e.label.intent == "propose" and e.label.side in ("buy", "sell") for e in orders)
    # the trade's arguments are the phrase's own: the amount typed is the amount planned
    for e in orders:
        if e.label.amount is not None:
            typed = {float(t.replace(",", "").lstrip("$")) for t in e.text.replace("$", " ").split()
                     if t.replace(",", "").replace(".", "", 1).isdigit()}
            assert e.label.amount in typed, (e.text, e.label)


def test_held_out_templates_never_appear_in_training():
    train_templates = {t for _, _, t, _ in routing.templates(heldout=False)}
    test_templates = {t for _, _, t, _ in routing.templates(heldout=True)}
    assert test_templates and not train_templates & test_templates
    assert test_templates == routing.HELDOUT  # every held-out entry names a real template
    train = routing.generate(2000, seed=0)
    assert not any(e.heldout or e.template in test_templates for e in train)
    test = routing.generate(300, heldout=True, seed=2)
    assert all(e.heldout for e in test)
    assert {e.category for e in test} >= {"order", "question", "negation", "injection", "quoted", "hypothetical"}


@pytest.mark.parametrize("reply,expected", [
    ('<tool_call>\n{"name": "plan", "arguments": {"intent": "propose", "side": "sell", "amount": 0.5, "asset": "ETH"}}'
     '\n</tool_call>', PlanCall(intent="propose", side="sell", amount=0.5, asset="ETH")),
    ('{"name": "plan", "arguments": {"intent": "Price"}}', PlanCall(intent="price")),
    ('```json\n{"intent": "quote", "side": "BUY", "amount": 100, "asset": "usdc"}\n```',
     PlanCall(intent="quote", side="buy", amount=100, asset="USDC")),
    ({"name": "plan", "arguments": '{"intent": "chat"}'}, PlanCall(intent="chat")),
    ('<tool_call>\n{"name": "get_price", "arguments": {"intent": "price"}}\n</tool_call>', None),  # another tool
    ('{"name": "plan", "arguments": {"intent": "moon"}}', None),
    ('I think you want the price', None),
    ('<tool_call>{"name": "plan", "arguments": {"intent": "propose", "amount": 1e999}}</tool_call>', None),
    ('{"name": "plan", "arguments": {"intent": "propose", "side": "sell", "amount": -2, "asset": "ETH"}}', None),
])
def test_parse_plan_reads_a_call_and_never_guesses(reply, expected):
    assert parse_plan(reply) == expected


def test_plan_call_round_trips_through_the_training_record():
    ex = routing.generate(1, seed=5)[0]
    rec = routing.to_chat(ex)
    assert rec["tools"] == [PLAN_TOOL] and rec["messages"][:2] == plan_messages(ex.text, ex.context)
    call = rec["messages"][-1]["tool_calls"][0]["function"]
    assert call["name"] == "plan" and parse_plan(call) == ex.label
    msg = tool_call_message(PlanCall(intent="propose", side="buy", amount=2.0, asset="ETH"))
    assert msg["tool_calls"][0]["function"]["arguments"] == {"intent": "propose", "side": "buy", "amount": 2,
                                                             "asset": "ETH"}


def test_plan_matching_needs_exact_trade_arguments():
    label = PlanCall(intent="propose", side="sell", amount=0.5, asset="ETH")
    assert plan_matches(PlanCall(intent="propose", side="sell", amount=0.5, asset="ETH"), label)
    assert not plan_matches(PlanCall(intent="propose", side="sell", amount=0.05, asset="ETH"), label)
    assert not plan_matches(PlanCall(intent="propose", side="buy", amount=0.5, asset="ETH"), label)
    assert not plan_matches(PlanCall(intent="quote", side="sell", amount=0.5, asset="ETH"), label)
    assert not plan_matches(None, label)
    assert plan_matches(PlanCall(intent="price", side="buy"), PlanCall(intent="price"))  # no arguments to check


def test_baselines_are_scored_on_the_same_states():
    labels = ["BUY", "HOLD", "HOLD", "SELL", "SELL", "HOLD"]
    positions = ["flat", "flat", "flat", "holding", "holding", "holding"]
    assert baselines(labels, positions) == {"majority": 0.5, "position_rule": round(4 / 6, 4)}
    assert spread(list(range(10)), 3) == [0, 3, 6] and spread([1, 2], None) == [1, 2]


def test_route_data_and_mix_write_chat_records_the_evaluator_reads(tmp_path):
    res = route_data(RouteDataConfig(n_train=60, n_valid=10, n_test=20, out=str(tmp_path / "route")))
    assert {k: v.n for k, v in res.splits.items()} == {"train": 60, "valid": 10, "test": 20}
    train = {json.loads(line)["messages"][1]["content"] for line in (tmp_path / "route" / "train.jsonl").open()}
    valid = {json.loads(line)["messages"][1]["content"] for line in (tmp_path / "route" / "valid.jsonl").open()}
    assert len(train & valid) <= 2  # valid texts are new phrasings (a few short ones can coincide across contexts)
    items = load_items(tmp_path / "route" / "test.jsonl")
    assert len(items) == 20 and all(isinstance(i.label, PlanCall) and i.tools == [PLAN_TOOL] for i in items)
    assert all(i.meta["heldout"] for i in items)
    (tmp_path / "trade").mkdir()
    for split in ("train", "valid"):
        (tmp_path / "trade" / f"{split}.jsonl").write_text(json.dumps({"messages": [], "meta": {"task": "trade"}}) + "\n")
    out = mix(MixConfig(inputs=[str(tmp_path / "trade"), str(tmp_path / "route")], repeat=[3, 1],
                        out=str(tmp_path / "mix")))
    assert out.splits["train"].actions == {"route": 60, "trade": 3} and out.splits["valid"].actions == \
        {"route": 10, "trade": 1}
    tasks = [json.loads(line)["meta"]["task"] for line in (tmp_path / "mix" / "train.jsonl").open()]
    assert tasks != sorted(tasks)  # shuffled, not concatenated
    assert Counter(tasks) == {"route": 60, "trade": 3}
