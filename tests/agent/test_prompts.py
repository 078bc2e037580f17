"""Every shipped prompt loads and renders with its variables; a missing variable is a clear error."""

from __future__ import annotations

import pytest

from prompts import list_prompts, load_prompt, prompt_variables, render_prompt
from trader_core.errors import ConfigError


def test_the_agent_prompts_are_shipped():
    assert {"system", "planner", "answer", "trader_question", "decision"} <= set(list_prompts())


@pytest.mark.parametrize("name", list_prompts())
def test_prompt_renders_with_its_variables(name):
    variables = {v: f"<{v}-value>" for v in prompt_variables(name)}
    text = render_prompt(name, **variables)
    assert "${" not in text
    for value in variables.values():
        assert value in text
    assert text.strip()


@pytest.mark.parametrize("name", [n for n in list_prompts() if prompt_variables(n)])
def test_missing_variable_is_named(name):
    first = prompt_variables(name)[0]
    others = {v: "x" for v in prompt_variables(name)[1:]}
    with pytest.raises(ConfigError, match=first):
        render_prompt(name, **others)


def test_trader_question_matches_the_seed_format():
    text = render_prompt("trader_question", price="2506.92", volume="999.43", volatility="0.045",
                         change="+1.2% in 24 hours", eth="3.746", usdc="9507.14")
    assert text.strip() == ("Given ETH price is $2506.92 with volume of 999.43 and volatility of 0.045, recent "
                            "price change of +1.2% in 24 hours, and I currently hold 3.746 ETH and 9507.14 "
                            "USDC, what trading action should I take on Uniswap?")


def test_unknown_prompt_lists_the_known_ones():
    with pytest.raises(ConfigError, match="planner"):
        load_prompt("no-such-prompt")
