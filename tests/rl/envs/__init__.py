"""Tests of rl/envs/."""
