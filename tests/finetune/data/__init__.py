"""Tests of finetune/data/."""
