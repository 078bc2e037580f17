"""Tests of onchain/venues/."""
