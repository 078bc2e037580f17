"""Tests of onchain/node/."""
