"""Prompt states on disk: a new process restores the evaluated prefix of a prompt, evaluates only the rest and
answers exactly as without the cache; a state is compact (KV bytes and tokens, no logit matrix); a state only
ever goes back into the model that made it; a damaged file is dropped; the disk budget holds. Real SmolLM2."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune.llm_backends.prompt_cache import PromptStateCache, compact_llama_class, model_key
from tests.finetune.llm_backends.test_quiet_llama import smollm2

SYSTEM = "You are a careful trading assistant. Answer in one short sentence. " * 12  # ~170 tokens of prefix
QUESTIONS = ["Q: What is ETH? A:", "Q: What is a swap? A:"]


def _llama(path: Path):
    return compact_llama_class()(model_path=str(path), n_ctx=512, n_threads=1, verbose=False, seed=0)


def _answers(llm) -> list[str]:
    return [llm.create_completion(SYSTEM + q, max_tokens=8, temperature=0.0)["choices"][0]["text"] for q in QUESTIONS]


class _Counting:
    """Counts the tokens a Llama evaluates (its `eval` is what llama-cpp-python's generate feeds the prompt to)."""

    def __init__(self, llm):
        self.n, self._eval = 0, llm.eval
        llm.eval = self

    def __call__(self, tokens):
        self.n += len(tokens)
        return self._eval(tokens)


@pytest.fixture(scope="module")
def model():
    return smollm2()


@pytest.fixture(scope="module")
def uncached(model):
    return _answers(_llama(model))


def test_a_new_process_starts_from_the_stored_prefix_and_answers_the_same(model, uncached, tmp_path):
    folder = tmp_path / model_key(model, None, 512, 512)
    first = _llama(model)
    first.set_cache(PromptStateCache(folder))
    assert _answers(first) == uncached
    assert list(folder.glob("*.state"))

    fresh = _llama(model)  # what a new `trader ask` process has: nothing in memory, the folder on disk
    fresh.set_cache(PromptStateCache(folder))
    counter = _Counting(fresh)
    prefix = len(fresh.tokenize(SYSTEM.encode()))
    answer = fresh.create_completion(SYSTEM + "Q: What is a fee? A:", max_tokens=8, temperature=0.0)
    full = len(fresh.tokenize((SYSTEM + "Q: What is a fee? A:").encode()))
    plain = _llama(model).create_completion(SYSTEM + "Q: What is a fee? A:", max_tokens=8, temperature=0.0)
    assert answer["choices"][0]["text"] == plain["choices"][0]["text"]
    # the prompt's own tokens evaluated: only what follows the stored prefix (plus the generated ones)
    assert counter.n <= full - prefix + 8 + 2, (counter.n, full, prefix)
    assert _answers(fresh) == uncached


def test_a_state_is_its_kv_bytes_and_tokens_not_a_logit_matrix(model, tmp_path):
    from finetune.llm_backends.runtime import load_llama

    llm = load_llama(model, n_ctx=512, n_threads=1, ram_cache_mb=4)
    _answers(llm)
    states = list(llm.cache.memory.values())
    assert states
    for s in states:
        assert s.scores.nbytes == 0  # llama-cpp-python's own state copied n_tokens x n_vocab floats (100+ MB)
    held = sum(s.llama_state_size + s.input_ids.nbytes + s.scores.nbytes for s in states)
    assert held <= llm.cache.capacity_bytes


def test_a_state_only_goes_back_into_the_model_that_made_it(model, tmp_path):
    other = tmp_path / "other.gguf"
    other.write_bytes(model.read_bytes())
    keys = {model_key(model, None, 512, 512), model_key(model, None, 1024, 512), model_key(model, None, 512, 256),
            model_key(other, None, 512, 512), model_key(model, other, 512, 512)}
    assert len(keys) == 5  # another file, LoRA or context setting: another folder


def test_a_damaged_state_file_is_dropped_not_loaded(model, tmp_path):
    folder = tmp_path / "states"
    llm = _llama(model)
    llm.set_cache(PromptStateCache(folder))
    _answers(llm)
    for path in folder.glob("*.state"):
        path.write_bytes(path.read_bytes()[:20])  # a writer killed mid-file, a full disk
    fresh = _llama(model)
    fresh.set_cache(PromptStateCache(folder))
    plain = _llama(model).create_completion(SYSTEM + QUESTIONS[0], max_tokens=8, temperature=0.0)
    assert fresh.create_completion(SYSTEM + QUESTIONS[0], max_tokens=8,
                                   temperature=0.0)["choices"][0]["text"] == plain["choices"][0]["text"]
    assert all(p.stat().st_size > 20 for p in folder.glob("*.state"))  # the damaged ones are gone


def test_an_unwritable_folder_keeps_states_in_memory(model, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    cache = PromptStateCache(blocker / "states")  # mkdir fails under a file, as under a read-only home
    assert cache.folder is None
    llm = _llama(model)
    llm.set_cache(cache)
    _answers(llm)
    assert cache.memory


def test_prompts_sharing_a_prefix_are_one_file_and_the_budget_keeps_the_newest(model, tmp_path):
    folder = tmp_path / "states"
    llm = _llama(model)
    llm.set_cache(PromptStateCache(folder))
    _answers(llm)  # two questions after one system prompt: the second adds nothing the first file lacks
    assert len(list(folder.glob("*.state"))) == 1

    small = tmp_path / "small"
    llm = _llama(model)
    llm.set_cache(PromptStateCache(small, disk_mb=0.5))  # below one state: only the newest stays
    for system in ("You are a poet. " * 30, "List prime numbers. " * 30):
        llm.create_completion(system + "Go:", max_tokens=4, temperature=0.0)
    assert len(list(small.glob("*.state"))) == 1
    assert PromptStateCache(small)[llm.input_ids[: llm.n_tokens].tolist()].n_tokens == llm.n_tokens
