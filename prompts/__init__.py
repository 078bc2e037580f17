"""Prompt files (system prompt, trader question, planner, Modelfile template), loaded by name."""
