"""Tests of agent/loop/."""
