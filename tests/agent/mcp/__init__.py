"""Tests of agent/mcp/: the MCP server driven by the official SDK's client over stdio and streamable HTTP."""
