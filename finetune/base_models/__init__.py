"""The base models: the embedded Qwen assembled from its wheels (store.py) and where every
other model and llama.cpp's converter come from (sources.py).

May import: trader_core.
"""
