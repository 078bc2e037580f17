"""Fine-tune pipeline: distil the DQN policy into chat data, LoRA-tune (MLX or PEFT), fuse, GGUF, quantize, Ollama.

Uses rl/ (the policy it distils); never imports agent/ or onchain/.
"""
