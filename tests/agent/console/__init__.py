"""Tests of agent/console/."""
