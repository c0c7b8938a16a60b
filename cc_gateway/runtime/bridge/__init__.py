"""The oauth-bridge: Claude Code (through claude-agent-sdk) as a LiteLLM custom provider.

`provider` (heavy: LiteLLM and the SDK) is what LiteLLM loads; `checks` (start-up warnings, settings),
`messages` (translation) and `process` (the CLI processes) are imported on their own, so that serve's
preflight and doctor can read the settings without loading LiteLLM.
"""
