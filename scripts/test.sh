#!/usr/bin/env bash
# The whole test suite, with its own set-up: virtualenv, Python deps, the Claude Code CLI,
# and redis-server. Safe to rerun; each step is skipped when already done.
#   ./scripts/test.sh                 # everything
#   ./scripts/test.sh tests/test_cli.py -k init   # pytest arguments pass through
set -euo pipefail
cd "$(dirname "$0")/.."

CLAUDE_CODE_VERSION="2.1.197"   # the Claude Code release the suite is tested against
VENV="${CC_GATEWAY_VENV:-.venv}"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test]'

if [ ! -x .cache/npm/bin/claude ] || ! .cache/npm/bin/claude --version 2>/dev/null | grep -q "$CLAUDE_CODE_VERSION"; then
  npm install --silent --no-audit --no-fund -g --prefix .cache/npm "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION"
fi

# Debian packages: redis-server (shared-state tests), docker-compose (validates rendered compose files).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

"$VENV/bin/ruff" check cc_gateway tests bench
exec "$VENV/bin/python" -m pytest "$@"
