# Shared by scripts/*: the lock files, uv (the one tool that writes and installs them), venv helpers.
# Sourced, not run. Expects the caller to have cd'ed to the repository root.

UV_VERSION="0.13.9"                     # uv, from PyPI, in its own small venv under .cache/
UV_HOME=".cache/uv-tool"
UV="$UV_HOME/bin/uv"
LOCK_DIR="requirements"
DEV_LOCK="$LOCK_DIR/dev.lock"           # runtime + bridge + redis + test: the test venv
RUNTIME_LOCK="$LOCK_DIR/runtime.lock"   # runtime + redis: `pip install` for users and images
BRIDGE_LOCK="$LOCK_DIR/bridge.lock"     # runtime + bridge + redis: oauth-bridge users and images
PYTHON_VERSION="3.11"                   # the locks are resolved for this Python (the image's python:3.11-slim)

export UV_NO_PROGRESS=1 UV_PYTHON_DOWNLOADS=never UV_CUSTOM_COMPILE_COMMAND="scripts/lock"

say() { printf '==> %s\n' "$*" >&2; }

# uv in .cache/uv-tool (pip-installed from PyPI); reused while its version matches.
ensure_uv() {
  if [ -x "$UV" ] && "$UV" --version 2>/dev/null | grep -q "^uv $UV_VERSION "; then
    return
  fi
  say "installing uv $UV_VERSION into $UV_HOME"
  rm -rf "$UV_HOME"
  python3 -m venv "$UV_HOME"
  "$UV_HOME/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
}

# make_venv DIR: a venv with pip in it (pip freeze checks and the Dockerfile's pip lines need pip).
make_venv() {
  if [ ! -x "$1/bin/python" ]; then
    python3 -m venv "$1"
  fi
}

# sync_venv DIR LOCK: make DIR's packages exactly LOCK (hash-checked; uv keeps the venv's own pip);
# idempotent, and about a second when nothing changed.
sync_venv() {
  make_venv "$1"
  "$UV" pip sync --quiet --python "$1/bin/python" --require-hashes "$2"
}

# compile_locks OUTDIR [uv pip compile flags...]: write the three locks into OUTDIR. The dev lock is
# resolved first; the other two are constrained to it, so every lock names the same versions.
compile_locks() {
  local out="$1"; shift
  local common=(--quiet --python-version "$PYTHON_VERSION" --universal --generate-hashes)
  "$UV" pip compile "${common[@]}" "$@" pyproject.toml --extra bridge --extra redis --extra test \
    -o "$out/dev.lock"
  "$UV" pip compile "${common[@]}" pyproject.toml --extra redis -c "$out/dev.lock" -o "$out/runtime.lock"
  "$UV" pip compile "${common[@]}" pyproject.toml --extra bridge --extra redis -c "$out/dev.lock" \
    -o "$out/bridge.lock"
}
