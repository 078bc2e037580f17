"""Tests of finetune/llm_backends/: the in-process runtime's quiet native logs."""
