"""Tests of rl/online/."""
