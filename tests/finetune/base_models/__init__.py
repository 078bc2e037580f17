"""Tests of finetune/base_models/."""
