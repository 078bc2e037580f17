"""Tests of finetune/convert/."""
