"""Installing the real engine: the `restate-server` binary and the `restate` CLI from npm, into a cache
directory, pinned to the version this project's reference semantics were measured on."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

__all__ = [
    "CLI_PACKAGE",
    "NPM_PACKAGE",
    "SERVER_VERSION",
    "RestateServerUnavailable",
    "find_cli_binary",
    "find_server_binary",
    "install_server",
]

# The server version this project measured its reference semantics against (see docs/real-server.md); override with
# PLAYGROUND_RESTATE_VERSION (e.g. "latest").
SERVER_VERSION = "1.7.12"
NPM_PACKAGE = "@restatedev/restate-server"
CLI_PACKAGE = "@restatedev/restate"  # the `restate` CLI, same version as the server
_BINARIES = {NPM_PACKAGE: "restate-server", CLI_PACKAGE: "restate"}
_PLATFORMS = {("Linux", "x86_64"): "linux-x64", ("Linux", "aarch64"): "linux-arm64",
              ("Darwin", "x86_64"): "darwin-x64", ("Darwin", "arm64"): "darwin-arm64"}


class RestateServerUnavailable(RuntimeError):
    """The restate-server binary is not installed and could not be installed (no npm, no registry access...)."""


def _cache_dir() -> Path:
    env = os.environ.get("PLAYGROUND_RESTATE_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "restate-playground"


def _platform_package(package: str = NPM_PACKAGE) -> str:
    key = (platform.system(), platform.machine())
    if key not in _PLATFORMS:
        raise RestateServerUnavailable(f"npm has no {package} build for {key[0]} {key[1]}; "
                                       "set PLAYGROUND_RESTATE_SERVER (or PLAYGROUND_RESTATE_CLI) to a binary")
    return f"{package}-{_PLATFORMS[key]}"


def _wanted_version() -> str:
    return os.environ.get("PLAYGROUND_RESTATE_VERSION", SERVER_VERSION)


def _cached_binary(prefix: Path, version: str, package: str = NPM_PACKAGE) -> Path | None:
    pkg_dir = prefix / "node_modules" / _platform_package(package)
    binary = pkg_dir / "bin" / _BINARIES[package]
    if not binary.is_file():
        return None
    if version != "latest":
        try:
            installed = json.loads((pkg_dir / "package.json").read_text()).get("version")
        except (OSError, ValueError):
            return None
        if installed != version:
            return None
    return binary


def install_server(version: str | None = None, prefix: Path | None = None, timeout: float = 600.0,
                   package: str = NPM_PACKAGE) -> Path:
    """`npm install --prefix <cache>/npm @restatedev/restate-server@<version>` and return the binary's path.

    Install scripts are not run (the binary ships inside the platform package; the only script is a
    download counter). Concurrent installs from several processes are serialised with a file lock."""
    version = version or _wanted_version()
    prefix = prefix or _cache_dir() / "npm"
    npm = shutil.which("npm")
    if npm is None:
        raise RestateServerUnavailable("npm is not installed, so the restate-server npm package cannot be "
                                       "installed (install Node.js and npm, or set PLAYGROUND_RESTATE_SERVER)")
    prefix.mkdir(parents=True, exist_ok=True)
    import fcntl
    with open(prefix / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _cached_binary(prefix, version, package)
        if found is not None:
            return found
        cmd = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--ignore-scripts",
               "--loglevel=error", f"{package}@{version}"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise RestateServerUnavailable(f"`{' '.join(cmd)}` did not finish in {timeout:.0f} s") from None
        found = _cached_binary(prefix, version, package)
        if proc.returncode != 0 or found is None:
            tail = (proc.stderr or proc.stdout).strip()[-2000:]
            raise RestateServerUnavailable(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{tail}")
        return found


def find_server_binary(install: bool = True) -> Path:
    """The restate-server to run: $PLAYGROUND_RESTATE_SERVER, else the cached npm install of the pinned
    version, else `restate-server` on PATH, else (with install=True) a fresh npm install into the cache."""
    return _find_binary(NPM_PACKAGE, "PLAYGROUND_RESTATE_SERVER", install,
                        "restate-server is not installed (python -m playground install-server)")


def find_cli_binary(install: bool = True) -> Path:
    """The `restate` CLI: $PLAYGROUND_RESTATE_CLI, else the cached npm install of `@restatedev/restate` at the
    pinned version, else `restate` on PATH, else (with install=True) an npm install into the same cache."""
    return _find_binary(CLI_PACKAGE, "PLAYGROUND_RESTATE_CLI", install,
                        "the restate CLI is not installed (python -m playground install-cli)")


def _find_binary(package: str, env_var: str, install: bool, missing: str) -> Path:
    """One package's binary: the path in `env_var`, the cache, PATH, or an npm install (in that order)."""
    explicit = os.environ.get(env_var)
    if explicit:
        path = Path(explicit).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise RestateServerUnavailable(f"{env_var}={explicit} is not an executable file")
        return path
    cached = _cached_binary(_cache_dir() / "npm", _wanted_version(), package)
    if cached is not None:
        return cached
    on_path = shutil.which(_BINARIES[package])
    if on_path:
        return Path(on_path)
    if not install:
        raise RestateServerUnavailable(missing)
    return install_server(package=package)
