"""Tests of onchain/market/."""
