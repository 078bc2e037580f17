"""Tests of rl/tuning/."""
