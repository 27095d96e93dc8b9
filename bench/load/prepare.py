"""Everything the load benchmark needs before it can run: the C load generator
(compiled here), sockjs-node 0.3.24 (installed from npm into bench/node/), picows,
the file-descriptor limit, and the facts about this machine saved with results."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
REPO = BENCH.parent
NODE_DIR = BENCH / "node"
BUILD_DIR = HERE / "_build"
LOADGEN_SRC = HERE / "loadgen.c"
LOADGEN = BUILD_DIR / "loadgen"
SOCKJS_NODE_VERSION = "0.3.24"
_USABLE = sorted(os.sched_getaffinity(0))  # read before the driver pins itself


def log(msg: str) -> None:
    print(msg, flush=True)


def build_loadgen(force: bool = False) -> Path:
    """Compile loadgen.c with the system C compiler (again when the source changed)."""
    if not force and LOADGEN.exists() and LOADGEN.stat().st_mtime >= LOADGEN_SRC.stat().st_mtime:
        return LOADGEN
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise SystemExit(
            "bench.load: a C compiler (cc/gcc/clang) is needed to build the load generator"
        )
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    _check_openssl(cc)
    tmp = LOADGEN.with_suffix(".tmp")
    cmd = [cc, "-O2", "-Wall", "-o", str(tmp), str(LOADGEN_SRC), "-lm", "-lssl", "-lcrypto"]
    log(f"building the load generator: {' '.join(cmd)}")
    subprocess.run(cmd, check=True)
    tmp.replace(LOADGEN)
    return LOADGEN


def _check_openssl(cc: str) -> None:
    """The generator's TLS scenarios link the system's OpenSSL: say so plainly when
    its headers or libraries are missing, instead of a page of compiler errors."""
    probe = (
        "#include <openssl/ssl.h>\n"
        "int main(void) { return SSL_CTX_new(TLS_client_method()) == 0; }\n"
    )
    src = BUILD_DIR / "openssl_probe.c"
    src.write_text(probe)
    out = BUILD_DIR / "openssl_probe"
    result = subprocess.run(
        [cc, "-o", str(out), str(src), "-lssl", "-lcrypto"], capture_output=True, text=True
    )
    src.unlink(missing_ok=True)
    out.unlink(missing_ok=True)
    if result.returncode != 0:
        raise SystemExit(
            "bench.load: the load generator needs OpenSSL's headers and libraries "
            "(Debian: libssl-dev; bash scripts/setup-system.sh installs it):\n"
            + result.stderr.strip()[-600:]
        )


def sockjs_node_installed() -> bool:
    pkg = NODE_DIR / "node_modules" / "sockjs" / "package.json"
    try:
        return json.loads(pkg.read_text())["version"] == SOCKJS_NODE_VERSION
    except (OSError, ValueError, KeyError):
        return False


def ensure_sockjs_node() -> str | None:
    """Install sockjs@0.3.24 into bench/node/ with npm; the reason it is unavailable, or None."""
    if not shutil.which("node"):
        return "node is not installed (apt-get install nodejs npm)"
    if sockjs_node_installed():
        return None
    npm = shutil.which("npm")
    if not npm:
        return "npm is not installed (apt-get install npm)"
    log(f"installing sockjs@{SOCKJS_NODE_VERSION} into {NODE_DIR.relative_to(REPO)}/ (npm)")
    cmd = [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"]
    if (NODE_DIR / "package-lock.json").exists():
        cmd[1] = "ci"
    result = subprocess.run(cmd, cwd=NODE_DIR)
    if result.returncode != 0 and cmd[1] == "ci":
        result = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=NODE_DIR)
    if result.returncode != 0 or not sockjs_node_installed():
        return "npm install of sockjs@0.3.24 failed"
    return None


def picows_missing() -> str | None:
    if importlib.util.find_spec("picows") is None:
        return "picows is not installed (pip install picows, or pip install -e '.[bench]')"
    return None


def trustme_missing() -> str | None:
    """The TLS scenarios make their certificates with trustme."""
    if importlib.util.find_spec("trustme") is None:
        return "trustme is not installed (pip install trustme, or pip install -e '.[bench]')"
    return None


def uvicorn_missing() -> str | None:
    for name in ("uvicorn", "httptools", "websockets", "wsproto"):
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed (pip install -e '.[test]')"
    return None


def fastsockjs_extension_missing() -> str | None:
    try:
        from fastsockjs import _frames  # noqa: F401
    except ImportError:
        return "the Cython extension fastsockjs._frames is not built (pip install -e .)"
    return None


def raise_fd_limit(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE (inherited by the servers and the generator)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft


def _cmd_version(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def _module_version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def machine_facts() -> dict[str, object]:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpu_model": model or platform.processor(),
        "cores": os.cpu_count(),
        "cores_usable": len(_USABLE),
        "mem_total_mb": mem_kb // 1024 if mem_kb else None,
        "kernel": platform.release(),
        "system": platform.platform(),
        "loadavg_at_start": _loadavg(),
    }


def _loadavg() -> str | None:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return None


def versions() -> dict[str, object]:
    import fastsockjs

    sockjs_pkg = NODE_DIR / "node_modules" / "sockjs" / "package.json"
    try:
        sockjs_version = json.loads(sockjs_pkg.read_text())["version"]
    except (OSError, ValueError, KeyError):
        sockjs_version = None
    return {
        "python": sys.version.split()[0],
        "fastsockjs": fastsockjs.__version__,
        "fastsockjs_extension": fastsockjs_extension_missing() is None,
        "uvloop": _module_version("uvloop"),
        "httptools": _module_version("httptools"),
        "cython": _module_version("Cython"),
        "picows": _module_version("picows"),
        "node": _cmd_version(["node", "--version"]),
        "sockjs_node": sockjs_version,
        "cc": _cmd_version([os.environ.get("CC") or "cc", "--version"]),
    }
