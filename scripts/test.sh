#!/usr/bin/env bash
# The whole test suite, with its own set-up: the virtualenv with the locked Python packages, the Claude
# Code CLIs, the Debian packages the tests use, and the wheel. Safe to rerun: every step that is already
# done costs about a second. What it installs:
#   .venv/                 exactly requirements/dev.lock (hash-checked), plus this checkout in editable mode
#   .cache/npm-new/        Claude Code $CLAUDE_NEWEST (the CLI the suite runs)
#   .cache/npm/            Claude Code $CLAUDE_OLDEST (the oldest supported; a small e2e subset runs on it)
#   .cache/uv-tool/        uv, which installs the lock
#   dist/                  the cc-gateway wheel (tests/test_wheel.py installs it into a fresh venv)
#   Debian packages        redis-server, postgresql, tmux, docker-compose (apt-get only if one is missing)
# Usage:
#   ./scripts/test.sh                              # everything
#   ./scripts/test.sh tests/test_cli.py -k init    # pytest arguments pass through
# CC_GATEWAY_VENV=DIR uses another venv; CC_GATEWAY_LOCK=FILE syncs it to another lock (scripts/check-litellm).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

CLAUDE_NEWEST="2.1.332"   # Claude Code releases the suite is tested against: newest ...
CLAUDE_OLDEST="2.1.197"   # ... and oldest supported (cc_gateway's minimum)
VENV="${CC_GATEWAY_VENV:-.venv}"
LOCK="${CC_GATEWAY_LOCK:-$DEV_LOCK}"
started=$SECONDS

ensure_uv
sync_venv "$VENV" "$LOCK"
# This checkout, editable; uv skips it when it is already installed from here.
"$UV" pip install --quiet --python "$VENV/bin/python" --no-deps -e .

# install_claude PREFIX VERSION: Claude Code from npm into PREFIX (Node 20 prints an EBADENGINE
# warning for the newest release; it runs fine).
install_claude() {
  if ! "$1/bin/claude" --version 2>/dev/null | grep -q "^$2 "; then
    say "installing Claude Code $2 into $1"
    npm install --silent --no-audit --no-fund -g --prefix "$1" "@anthropic-ai/claude-code@$2"
  fi
  "$1/bin/claude" --version | grep -q "^$2 " || { say "Claude Code $2 did not install into $1"; exit 1; }
}
install_claude .cache/npm-new "$CLAUDE_NEWEST"
install_claude .cache/npm "$CLAUDE_OLDEST"

# Debian packages: redis-server (shared-state tests), postgresql (team store), tmux (terminal tests),
# docker-compose (validates rendered compose files). apt-get update runs only when one is missing.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The wheel, as users get it: tests/test_wheel.py installs it with the lock into a fresh venv and runs
# the demo end to end from there, so a file missing from the package fails the suite.
rm -rf dist
"$UV" build --quiet --wheel --out-dir dist . >/dev/null
wheels=(dist/cc_gateway-*.whl)

export CC_GATEWAY_CLAUDE_BIN="$PWD/.cache/npm-new/bin/claude" CC_GATEWAY_CLAUDE_VERSION="$CLAUDE_NEWEST"
export CC_GATEWAY_CLAUDE_BIN_OLDEST="$PWD/.cache/npm/bin/claude" CC_GATEWAY_CLAUDE_VERSION_OLDEST="$CLAUDE_OLDEST"
export CC_GATEWAY_WHEEL="$PWD/${wheels[0]}" CC_GATEWAY_UV="$PWD/$UV"
export LITELLM_LOCAL_MODEL_COST_MAP=True
say "set-up done in $((SECONDS - started)) s"

"$VENV/bin/ruff" check cc_gateway tests bench
status=0
"$VENV/bin/python" -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  say "pytest collected no tests (exit 5): nothing was tested, so this run fails"
  exit 1
fi
exit "$status"
