"""The PEFT backend of `trader finetune lora`: transformers + PEFT with mlx-lm's semantics.

Same meaning as mlx_lm.lora: LoRA on `keys` of the last `num_layers` blocks, `scale` as the LoRA
multiplier (PEFT's lora_alpha = scale * rank), the loss on the answer only when `mask_prompt`, a
validation loss before training and every `steps_per_eval` iterations.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from finetune import formats
from finetune.train.lora_config import DEFAULT_KEYS, PEFT_SUBDIR, LoraConfig, lr_at
from finetune.base_models.sources import resolve_base
from trader_core.errors import DataError, ModelError


def load_base(name: str, dtype: str = "float32"):
    """(model, tokenizer) from a resolved base name; a hub id that cannot be fetched is a one-line error."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_base(name)
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except OSError as exc:
        raise ModelError(f"cannot load base model {name!r} ({str(exc).splitlines()[0]}); pass a local "
                         "Hugging Face folder, or 'smollm2-135m' for the bundled small model") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok


def encode(tok, messages: list[dict], mask_prompt: bool, max_len: int,
           tools: list[dict] | None = None) -> tuple[list[int], list[int]]:
    """Token ids and labels of one chat (tools rendered by the model's own template); prompt tokens get
    label -100 when `mask_prompt`."""
    full = tok.apply_chat_template(messages, tools=tools, tokenize=False)
    prompt = tok.apply_chat_template(messages[:-1], tools=tools, tokenize=False, add_generation_prompt=True)
    if not full.startswith(prompt):
        raise DataError("the chat template renders the request differently inside the full chat; "
                        "the prompt mask would be wrong")
    ids = tok(full, add_special_tokens=False)["input_ids"][:max_len]
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"]) if mask_prompt else 0
    labels = [-100] * min(n_prompt, len(ids)) + ids[n_prompt:]
    return ids, labels


def _load_split(tok, path: Path, config: LoraConfig) -> list[tuple[list[int], list[int]]]:
    rows = []
    for i, rec in enumerate(formats.read_jsonl(path), 1):
        msgs = rec.get("messages")
        if not msgs or msgs[-1].get("role") != "assistant":
            raise DataError(f"{path}: record {i} is not a chat ending with an assistant message")
        ids, labels = encode(tok, msgs, config.mask_prompt, config.max_seq_length, rec.get("tools"))
        if all(x == -100 for x in labels):  # the answer was cut off: training on it would be a silent zero loss
            raise DataError(f"{path}: record {i} has no answer token left within max_seq_length "
                            f"{config.max_seq_length}; raise max_seq_length in the LoRA config")
        rows.append((ids, labels))
    if not rows:
        raise DataError(f"{path} is empty")
    return rows


def _batch(rows, pad_id: int):
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return ids, labels, mask


def answer_loss(model, ids, labels, mask, dtype):
    """Mean cross-entropy over labelled tokens (the answers), projecting only the positions that predict
    them onto the vocabulary: with mask_prompt most positions are prompt, and Qwen's 152k-token head over
    every position costs as much as the layers. Returns (loss, labelled token count)."""
    import torch

    labelled = (labels != -100).any(dim=0).nonzero()
    first = int(labelled[0]) if len(labelled) else labels.shape[1] - 1
    keep = labels.shape[1] - max(0, first - 1)  # logits at position i predict token i + 1
    with torch.autocast(ids.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits
    targets = labels[:, labels.shape[1] - keep + 1:]
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                             targets.reshape(-1), ignore_index=-100, reduction="sum")
    count = int((targets != -100).sum())
    return loss / max(1, count), count


def compute_dtype(config: LoraConfig, device: str):
    """The autocast dtype (None = plain float32): bfloat16 where the hardware has fast kernels for it."""
    import torch

    if config.compute_dtype == "float32":
        return None
    if config.compute_dtype == "bfloat16":
        return torch.bfloat16
    if device == "cuda":
        return torch.bfloat16
    try:  # oneDNN's check: AVX512-BF16 or AMX (measured here: 30 s vs 47 s per Qwen-0.5B step)
        return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    except (AttributeError, RuntimeError):
        return None


def _val_loss(model, rows, config: LoraConfig, pad_id: int, dtype=None) -> float:
    import torch

    n = len(rows) if config.val_batches < 0 else min(len(rows), config.val_batches * config.batch_size)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, n, config.batch_size):
            ids, labels, mask = (t.to(model.device) for t in _batch(rows[start:start + config.batch_size], pad_id))
            loss, tokens = answer_loss(model, ids, labels, mask, dtype)
            total += float(loss) * tokens
            count += tokens
    model.train()
    return total / max(1, count)


def peft_model(base, config: LoraConfig, resume: Path | None):
    from peft import LoraConfig as PeftLoraConfig
    from peft import PeftModel, get_peft_model

    if resume is not None:
        try:
            return PeftModel.from_pretrained(base, str(resume / PEFT_SUBDIR), is_trainable=True)
        except (RuntimeError, ValueError, OSError) as exc:  # size mismatch, missing files
            raise ModelError(f"cannot resume adapter {resume}: {str(exc).splitlines()[0]}") from None
    n_layers = base.config.num_hidden_layers
    first = 0 if config.num_layers < 0 else max(0, n_layers - config.num_layers)
    lp = config.lora_parameters
    spec = PeftLoraConfig(r=lp.rank, lora_alpha=lp.scale * lp.rank, lora_dropout=lp.dropout,
                          target_modules=lp.keys or DEFAULT_KEYS, layers_to_transform=list(range(first, n_layers)),
                          task_type="CAUSAL_LM")
    try:
        return get_peft_model(base, spec)
    except ValueError as exc:
        raise ModelError(f"LoRA keys {lp.keys or DEFAULT_KEYS} do not match this model: {exc}") from None


def train_peft(config: LoraConfig, out: Path, resume: Path | None) -> tuple[list, list]:
    """The training loop; returns ([(step, train_loss)], [(step, val_loss)]) and saves the adapter."""
    import numpy as np
    import torch

    from trader_core.runtime import configure_torch

    configure_torch()
    torch.manual_seed(config.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # a GPU box trains the 3B model in bf16
    base, tok = load_base(config.model, dtype="bfloat16" if device == "cuda" else "float32")
    base.to(device)
    if config.grad_checkpoint:
        base.gradient_checkpointing_enable()
        base.enable_input_require_grads()  # frozen embeddings: checkpointed blocks still need a grad path
    model = peft_model(base, config, resume)
    train_rows = _load_split(tok, Path(config.data) / "train.jsonl", config)
    val_rows = _load_split(tok, Path(config.data) / "valid.jsonl", config)
    params = [p for p in model.parameters() if p.requires_grad]
    opt_cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    opt = opt_cls(params, lr=lr_at(0, config))
    rng = np.random.default_rng(config.seed)
    order: list[int] = []
    dtype = compute_dtype(config, device)
    train_log, val_log, window = [], [(0, round(_val_loss(model, val_rows, config, tok.pad_token_id, dtype), 4))], []
    print(f"Iter 0: Val loss {val_log[0][1]:.3f} ({len(train_rows)} train, {len(val_rows)} valid records)",
          file=sys.stderr, flush=True)
    model.train()
    t0 = time.perf_counter()
    for step in range(1, config.iters + 1):
        if len(order) < config.batch_size:  # a fresh shuffled epoch
            order += rng.permutation(len(train_rows)).tolist()
        picked, order = order[: config.batch_size], order[config.batch_size:]
        ids, labels, mask = (t.to(device) for t in _batch([train_rows[i] for i in picked], tok.pad_token_id))
        for group in opt.param_groups:
            group["lr"] = lr_at(step - 1, config)
        loss, _ = answer_loss(model, ids, labels, mask, dtype)
        if not torch.isfinite(loss.detach()):
            raise ModelError(f"loss became {loss.item()} at iteration {step}; lower learning_rate")
        opt.zero_grad()
        loss.backward()
        opt.step()
        window.append(loss.item())
        if step % config.steps_per_report == 0 or step == config.iters:
            train_log.append((step, round(sum(window) / len(window), 4)))
            window = []
            # mlx-lm's progress line (stderr: --json keeps stdout clean)
            print(f"Iter {step}: Train loss {train_log[-1][1]:.3f}, lr {lr_at(step - 1, config):.2e}, "
                  f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        if step % config.steps_per_eval == 0 or step == config.iters:
            val_log.append((step, round(_val_loss(model, val_rows, config, tok.pad_token_id, dtype), 4)))
            print(f"Iter {step}: Val loss {val_log[-1][1]:.3f}", file=sys.stderr, flush=True)
        if config.save_every and step % config.save_every == 0:
            model.save_pretrained(out / PEFT_SUBDIR)
    model.save_pretrained(out / PEFT_SUBDIR)
    return train_log, val_log
