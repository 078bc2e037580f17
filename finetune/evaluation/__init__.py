"""How well a model does its jobs (plan calls, trade decisions) and agreement at every rung of
the export ladder.

May import: finetune.llm_backends, finetune.convert, finetune.base_models, finetune.formats /
plan_call / artifacts, trader_core.
"""
