"""Training data: the policy's decisions distilled to records, teacher answers, the chat JSONL
splits, and the generated plan-call phrasings.

May import: rl (the policy it distils), finetune.llm_backends, finetune.formats / plan_call /
artifacts, trader_core, prompts.
"""
