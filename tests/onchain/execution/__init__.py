"""Tests of onchain/execution/."""
