"""Tests of onchain/offline/: the replicas at canonical addresses and the real history baked into them."""
