"""Tests of agent/turn/."""
