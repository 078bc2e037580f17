"""`trader mcp`: the agent's tools as a Model Context Protocol server (official `mcp` SDK, stdio or streamable HTTP).

- `config.McpConfig`: the command's typed settings (transport, port, the execution and live-chain opt-ins).
- `tools.McpTools`: the eight tools over the agent's own `ToolSession` (same argument models, same onchain calls,
  same guards as the CLI), with execution off unless the server was started with `--allow-execute`.
- `server`: the MCP server built from those tools, one-line tool errors, stdout kept for the protocol.
- `command`: the `trader mcp` command (parsing only; the SDK is imported when it runs).
"""
