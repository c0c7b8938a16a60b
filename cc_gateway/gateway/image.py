"""What a gateway folder's Dockerfile installs: a wheel of this very cc-gateway and the lock it was tested with.

cc-gateway is not on PyPI (and the name is free for anyone to take), so the image must not install it from an
index. `init` writes a wheel of the installed cc-gateway and the matching lock (hash-checked versions) beside
the Dockerfile; the Dockerfile copies both and installs them with pip. The wheel is built from the installed
files, byte for byte the same on every run for the same cc-gateway (fixed timestamps, sorted entries), so a
rerun of `init` rewrites nothing.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import zipfile
from pathlib import Path

import cc_gateway
from cc_gateway.core.files import atomic_write

DIST = "cc-gateway"
PACKAGE = Path(cc_gateway.__file__).resolve().parent
LOCK_FILE = "requirements.lock"
_LOCKS = "data/locks"  # inside the package (the wheel carries requirements/*.lock here)
_EPOCH = (1980, 1, 1, 0, 0, 0)


def wheel_name() -> str:
    """The file name of this cc-gateway's wheel."""
    return f"cc_gateway-{cc_gateway.__version__}-py3-none-any.whl"


def lock_text(*, bridge: bool) -> str:
    """The lock the image installs: runtime + redis, or with the oauth-bridge's claude-agent-sdk."""
    name = "bridge.lock" if bridge else "runtime.lock"
    for folder in (PACKAGE / _LOCKS, PACKAGE.parent / "requirements"):  # installed wheel, then a checkout
        if (folder / name).is_file():
            return (folder / name).read_text()
    raise FileNotFoundError(f"{name}: neither in {PACKAGE / _LOCKS} nor in a checkout's requirements/")


def _package_files() -> dict[str, bytes]:
    """Archive name -> content of every file of the installed package (no caches), plus the locks."""
    files = {}
    for path in sorted(PACKAGE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            files[f"cc_gateway/{path.relative_to(PACKAGE).as_posix()}"] = path.read_bytes()
    checkout = PACKAGE.parent / "requirements"
    for name in ("runtime.lock", "bridge.lock"):
        key = f"cc_gateway/{_LOCKS}/{name}"
        if key not in files and (checkout / name).is_file():
            files[key] = (checkout / name).read_bytes()
    return files


def _dist_info() -> dict[str, bytes]:
    """The .dist-info files of the installed distribution that a wheel carries (RECORD is added later)."""
    dist = importlib.metadata.distribution(DIST)
    info = f"cc_gateway-{cc_gateway.__version__}.dist-info"
    files = {
        f"{info}/METADATA": (dist.read_text("METADATA") or "").encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: cc-gateway\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    entry_points = dist.read_text("entry_points.txt")
    if entry_points:
        files[f"{info}/entry_points.txt"] = entry_points.encode()
    return files


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}\n"


def build_wheel() -> bytes:
    """A wheel of the installed cc-gateway, identical on every call for the same installed files."""
    files = {**_package_files(), **_dist_info()}
    record = f"cc_gateway-{cc_gateway.__version__}.dist-info/RECORD"
    files[record] = ("".join(_record_line(n, d) for n, d in files.items()) + f"{record},,\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            entry = zipfile.ZipInfo(name, date_time=_EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return buffer.getvalue()
def image_inputs(*, bridge: bool) -> dict[str, bytes]:
    """File name -> content of what the Dockerfile copies besides config.yaml and the hook module."""
    return {wheel_name(): build_wheel(), LOCK_FILE: lock_text(bridge=bridge).encode()}


def write_image_inputs(folder: Path, *, bridge: bool, dry_run: bool = False) -> list[tuple[str, Path]]:
    """Write the wheel and lock into folder (atomically; an identical file is left alone).

    Returns (action, path) per file, action being create, update or identical. They are build inputs
    cc-gateway owns, like a compiled file: an outdated one is replaced, not kept.
    """
    done = []
    for name, data in image_inputs(bridge=bridge).items():
        path = folder / name
        old = path.read_bytes() if path.is_file() else None
        action = "identical" if old == data else ("create" if old is None else "update")
        if action != "identical" and not dry_run:
            atomic_write(path, data, mode=0o644)
        done.append((action, path))
    return done
