"""cc-gateway: generate and run LiteLLM proxy configurations for Claude Code."""

__version__ = "0.1.0"
