"""The GGUF header reader against gguf.GGUFReader and transformers on the real SmolLM2 GGUF: same metadata,
same tensors, the same base config for the LoRA converter; a damaged file is one line."""

import json

import pytest

from finetune.convert.gguf_header import read_gguf_header
from finetune.convert.trader_model import base_config_dir
from trader_core.errors import ModelError

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def smollm2():
    from finetune.llm_backends.chat_models import smollm2_path
    from trader_core.errors import LLMError

    try:
        return smollm2_path()
    except LLMError as exc:
        pytest.skip(str(exc))


def test_header_matches_gguf_reader(smollm2):
    from gguf import GGUFReader
    from gguf.constants import GGUFValueType

    head, reader = read_gguf_header(smollm2), GGUFReader(str(smollm2))
    arrays = {k: len(f.data) for k, f in reader.fields.items() if f.types and f.types[0] == GGUFValueType.ARRAY}
    assert head.array_lengths == arrays and arrays["tokenizer.ggml.tokens"] == 49152
    scalars = {k: f.contents() for k, f in reader.fields.items() if k not in arrays and not k.startswith("GGUF.")}
    assert set(head.values) == set(scalars)
    for key, value in scalars.items():
        assert head.values[key] == pytest.approx(value) if isinstance(value, float) else head.values[key] == value, key
    assert head.tensor_names == [t.name for t in reader.tensors] and head.version == 3


def test_base_config_matches_transformers(smollm2, tmp_path):
    from transformers import AutoConfig

    ours = json.loads((base_config_dir(smollm2, tmp_path / "cfg") / "config.json").read_text())
    ref = AutoConfig.from_pretrained(smollm2.parent, gguf_file=smollm2.name).to_dict()
    for key in ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "intermediate_size", "rope_theta", "rms_norm_eps", "tie_word_embeddings", "vocab_size",
                "max_position_embeddings"):
        assert ours.get(key) == ref.get(key), key
    assert ours["architectures"] == ["LlamaForCausalLM"]


@pytest.mark.parametrize("damage", ["truncated", "not_gguf", "empty"])
def test_a_damaged_file_is_one_line(smollm2, tmp_path, damage):
    bad = tmp_path / "bad.gguf"
    data = smollm2.read_bytes()[:200_000]
    bad.write_bytes({"truncated": data, "not_gguf": b"PK\x03\x04" + data[4:], "empty": b""}[damage])
    with pytest.raises(ModelError) as err:
        read_gguf_header(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
