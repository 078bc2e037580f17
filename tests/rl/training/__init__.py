"""Tests of rl/training/."""
