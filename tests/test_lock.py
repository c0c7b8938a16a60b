"""The lock files: what got installed is what is locked, the locks agree, pyproject's ranges admit them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "requirements"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^ ;\\]+)(?: ; (?P<marker>[^\\]+?))? *\\?$")


def read_lock(path: Path, *, applicable_only: bool = True) -> dict[str, str]:
    """name -> version for every pin in a uv-compiled lock (only those whose markers hold here)."""
    pins: dict[str, str] = {}
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines):
        match = PIN.match(line)
        if not match:
            continue
        assert lines[number + 1].strip().startswith("--hash=sha256:"), f"{path.name}: {match['name']} has no hash"
        if applicable_only and match["marker"] and not Marker(match["marker"]).evaluate():
            continue
        pins[canonicalize_name(match["name"])] = match["version"]
    return pins


def installed() -> dict[str, str]:
    """name -> version of what `pip freeze` lists in this interpreter's environment (editables left out)."""
    out = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable", "--disable-pip-version-check"],
                         capture_output=True, text=True, check=True).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            found[canonicalize_name(name)] = version.strip()
        elif line.strip() and not line.startswith("#"):
            found[line.strip()] = "(not a plain pin)"
    return found


def test_installed_packages_are_exactly_the_lock():
    """`pip freeze` of the venv running the suite equals the lock test.sh installed: nothing more, less or other."""
    lock = Path(os.environ.get("CC_GATEWAY_LOCK") or LOCKS / "dev.lock")
    if not lock.is_absolute():
        lock = ROOT / lock
    expected, actual = read_lock(lock), installed()
    extra = {name: v for name, v in actual.items() if name not in expected and name != "cc-gateway"}
    missing = {name: v for name, v in expected.items() if name not in actual}
    other = {name: (v, actual[name]) for name, v in expected.items() if name in actual and actual[name] != v}
    assert (extra, missing, other) == ({}, {}, {}), f"venv differs from {lock.name} (run scripts/test.sh)"


def test_every_lock_agrees_with_the_dev_lock():
    """runtime.lock and bridge.lock name the versions the suite ran with (they are resolved against dev.lock)."""
    dev = read_lock(LOCKS / "dev.lock", applicable_only=False)
    for name in ("runtime.lock", "bridge.lock"):
        pins = read_lock(LOCKS / name, applicable_only=False)
        assert pins, name
        assert {n: v for n, v in pins.items() if dev.get(n) != v} == {}, name
    assert "claude-agent-sdk" in read_lock(LOCKS / "bridge.lock")
    assert "claude-agent-sdk" not in read_lock(LOCKS / "runtime.lock")
    assert "pytest" not in read_lock(LOCKS / "bridge.lock")


def test_pyproject_ranges_admit_the_locked_versions():
    """`pip install .` without the lock can pick what the lock has: every range admits the locked version."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev = read_lock(LOCKS / "dev.lock")
    specs = [*project["dependencies"], *(s for extra in project["optional-dependencies"].values() for s in extra)]
    refused = []
    for spec in specs:
        requirement = Requirement(spec)
        if requirement.marker and not requirement.marker.evaluate():
            continue
        version = dev[canonicalize_name(requirement.name)]
        if not requirement.specifier.contains(version, prereleases=True):
            refused.append(f"{spec} refuses the locked {version}")
        upper = [s for s in requirement.specifier if s.operator in ("<", "<=", "~=")]
        assert not upper, f"{spec}: an upper bound nobody tested; the lock is where versions are held"
    assert refused == []
    assert "litellm[proxy]==1.106.2" in project["dependencies"]
