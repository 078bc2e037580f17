"""The conversational trading agent: tools over rl/, onchain/ and finetune/, the chat REPL and the `trader` CLI."""
