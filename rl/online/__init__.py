"""Online learning from the agent's own fills: replay store, prioritised replay, learner, promotion gate."""
