"""Packaging: the sdist, the wheels built from it, and the installed wheel.

``python -m build`` makes the sdist from a copy of the tracked files (so the
work tree's ``*.so`` and ``*.c`` cannot leak in). The sdist, unpacked, makes a
binary wheel (``FASTSOCKJS_BUILD_EXTENSION=required``) and a pure one
(``skip``). The binary wheel must pass ``auditwheel show`` and, installed in a
fresh venv, pass the unit, property and integration suites (the wheel tests of
``[tool.cibuildwheel]``) from a tree that has no ``fastsockjs/`` source, so
every import resolves to the installed wheel.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.timeout(900),
    # auditwheel and the manylinux tags are Linux-only; CI runs on Linux.
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux wheels only"),
]

# Reports what a venv's interpreter imports, to prove it is the installed copy.
PROBE = """
import json, fastsockjs, fastsockjs.frames as f
print(json.dumps({"file": fastsockjs.__file__, "speedups": fastsockjs.speedups_enabled,
                  "impl": f.impl.__file__, "encoded": f.encode_messages(["x"])}))
"""


@dataclass(frozen=True)
class Dists:
    sdist: Path
    wheel: Path  # compiled, built from the sdist
    pure_wheel: Path  # FASTSOCKJS_BUILD_EXTENSION=skip, built from the sdist


def _env(**extra: str) -> dict[str, str]:
    """The caller's environment, less what could point a child at the source tree."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("FASTSOCKJS_")
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def _run(
    cmd: Sequence[str | Path], *, timeout: float, cwd: Path | None = None, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; a failure shows its output, a hang is killed by the timeout."""
    try:
        proc = subprocess.run(
            [str(c) for c in cmd],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        # The output read before the kill comes back as bytes even with text=True.
        out = [
            o.decode(errors="replace") if isinstance(o, bytes) else o or ""
            for o in (exc.output, exc.stderr)
        ]
        pytest.fail(f"{cmd} timed out after {timeout} s:\n{out[0][-6000:]}\n{out[1][-6000:]}")
    if proc.returncode != 0:
        pytest.fail(
            f"{cmd} exited {proc.returncode}:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}",
            pytrace=False,
        )
    return proc


def _require_module(name: str) -> None:
    # A missing tool fails rather than skips: the test extra installs it.
    if importlib.util.find_spec(name) is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'", pytrace=False)


def _copy_tracked(dest: Path, under: str = "") -> None:
    """Copy the tracked files (as in the work tree, uncommitted edits included)."""
    out = _run(
        ["git", "-C", ROOT, "ls-files", "-z", "--", under or "."], timeout=60, env=_env()
    ).stdout
    for name in filter(None, out.split("\0")):
        src = ROOT / name
        if not src.exists():  # deleted but not yet committed
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)


def _unpack(sdist: Path, dest: Path) -> Path:
    with tarfile.open(sdist) as tar:
        tar.extractall(dest, filter="data")
    (top,) = dest.iterdir()
    return top


def _only(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {directory}, found {found}"
    return found[0]


def _wheel_meta(wheel: Path) -> tuple[set[str], str]:
    """The wheel's file names and its WHEEL metadata."""
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (meta,) = (n for n in names if n.endswith(".dist-info/WHEEL"))
        return names, zf.read(meta).decode()


def _make_venv(path: Path, *requirements: str) -> Path:
    """A fresh venv (no system site-packages) with ``requirements``; returns its python."""
    _run([sys.executable, "-m", "venv", path], timeout=180, env=_env())
    python = path / "bin" / "python"
    _run([python, "-m", "pip", "install", "-q", *requirements], timeout=600, env=_env())
    return python


def _probe(python: Path, cwd: Path) -> dict[str, object]:
    out = _run([python, "-c", PROBE], timeout=60, cwd=cwd, env=_env()).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def _inside(path: object, root: Path) -> bool:
    return Path(str(path)).resolve().is_relative_to(root.resolve())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("packaging")
    yield base
    # Venvs and build trees are hundreds of MB: do not leave them to pytest's retention.
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def dists(workdir: Path) -> Dists:
    _require_module("build")
    src = workdir / "src"
    _copy_tracked(src)
    assert not list(src.glob("fastsockjs/*.so")) and not list(src.glob("fastsockjs/*.c"))

    # The sdist as the release workflow makes it (default extension mode).
    _run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", workdir / "sdist", src],
        timeout=300,
        env=_env(),
    )
    sdist = _only(workdir / "sdist", "fastsockjs-*.tar.gz")

    # Each wheel from its own unpacked sdist: a build writes build/ and
    # egg-info into its source tree.
    wheels: dict[str, Path] = {}
    for mode in ("required", "skip"):
        tree = _unpack(sdist, workdir / f"unpacked-{mode}")
        out = workdir / f"wheel-{mode}"
        _run(
            [sys.executable, "-m", "build", "--wheel", "--outdir", out, tree],
            timeout=600,
            env=_env(FASTSOCKJS_BUILD_EXTENSION=mode),
        )
        wheels[mode] = _only(out, "fastsockjs-*.whl")
    return Dists(sdist=sdist, wheel=wheels["required"], pure_wheel=wheels["skip"])


@pytest.fixture(scope="module")
def wheel_venv(workdir: Path, dists: Dists) -> Path:
    """A venv with the compiled wheel and its test extra; returns its python."""
    return _make_venv(workdir / "venv", f"fastsockjs[test] @ {dists.wheel.as_uri()}")


@pytest.fixture(scope="module")
def tests_tree(workdir: Path) -> Path:
    """The tests, the docs some of them check, and the pytest config, without the
    ``fastsockjs/`` package."""
    run = workdir / "run"
    _copy_tracked(run, "tests")
    _copy_tracked(run, "docs")  # (test_message_path reads docs/architecture.md)
    shutil.copy2(ROOT / "pyproject.toml", run / "pyproject.toml")
    assert not (run / "fastsockjs").exists()
    return run


def test_sdist_has_the_sources_and_no_build_artifacts(dists: Dists) -> None:
    with tarfile.open(dists.sdist) as tar:
        names = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    for needed in (
        "PKG-INFO",
        "setup.py",
        "pyproject.toml",
        "fastsockjs/_frames.pyx",
        "fastsockjs/_frames.pyi",
        "fastsockjs/_frames_py.py",
        "fastsockjs/_http.pyx",
        "fastsockjs/_http.pyi",
        "fastsockjs/_http_py.py",
        "fastsockjs/aio/_connection_py.py",
        "fastsockjs/aio/_connection.pxd",
        "fastsockjs/py.typed",
        "tests/unit/test_frames.py",
    ):
        assert needed in names, f"{needed} missing from {dists.sdist.name}"
    leaked = [n for n in names if n.endswith((".so", ".c", ".pyc")) and n.startswith("fastsockjs/")]
    assert not leaked, f"build artifacts in the sdist: {leaked}"


def test_binary_wheel_has_the_extension_and_typing(dists: Dists) -> None:
    names, meta = _wheel_meta(dists.wheel)
    for kernel in ("_frames", "_http", "aio/_connection"):
        assert [n for n in names if re.fullmatch(rf"fastsockjs/{kernel}\..*\.so", n)], sorted(names)
    assert {"fastsockjs/py.typed", "fastsockjs/_frames.pyi", "fastsockjs/_http.pyi"} <= names
    assert "Root-Is-Purelib: false" in meta
    assert re.search(r"-cp3\d+-cp3\d+t?-linux_\w+\.whl$", dists.wheel.name), dists.wheel.name


def test_auditwheel_accepts_the_binary_wheel(dists: Dists) -> None:
    _require_module("auditwheel")
    out = _run(
        [sys.executable, "-m", "auditwheel", "show", dists.wheel], timeout=120, env=_env()
    ).stdout
    # The tag auditwheel grants, not the wheel's own name (which says linux_* too).
    assert re.search(r'platform tag:\s*"(?:many|musl)?linux_\w+"', out), out


def test_installed_wheel_imports_the_compiled_kernels(wheel_venv: Path, tests_tree: Path) -> None:
    venv = wheel_venv.parent.parent
    found = _probe(wheel_venv, tests_tree)
    assert found["speedups"] is True, found
    assert _inside(found["file"], venv), found
    assert _inside(found["impl"], venv) and str(found["impl"]).endswith(".so"), found
    assert found["encoded"] == 'a["x"]'


def test_installed_wheel_passes_the_core_suites(wheel_venv: Path, tests_tree: Path) -> None:
    # CI=true turns a missing extension into failures instead of skips.
    proc = _run(
        [
            wheel_venv,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/unit",
            "tests/property",
            "tests/integration",
        ],
        timeout=600,
        cwd=tests_tree,
        env=_env(CI="true"),
    )
    summary = proc.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "skipped" not in summary, proc.stdout[-3000:]


def test_pure_wheel_has_no_extension_and_works(dists: Dists, workdir: Path) -> None:
    names, meta = _wheel_meta(dists.pure_wheel)
    assert not [n for n in names if n.endswith((".so", ".pyd"))], sorted(names)
    assert {"fastsockjs/py.typed", "fastsockjs/_frames.pyi", "fastsockjs/_frames_py.py",
            "fastsockjs/_http_py.py", "fastsockjs/aio/_connection_py.py"} <= names
    # skip builds no ext_modules, so setuptools tags the wheel pure.
    assert dists.pure_wheel.name.endswith("-py3-none-any.whl"), dists.pure_wheel.name
    assert "Root-Is-Purelib: true" in meta

    venv = workdir / "venv-pure"
    python = _make_venv(venv, str(dists.pure_wheel))
    cwd = workdir / "empty"
    cwd.mkdir()
    found = _probe(python, cwd)
    assert found["speedups"] is False, found
    assert _inside(found["file"], venv) and _inside(found["impl"], venv), found
    assert str(found["impl"]).endswith("_frames_py.py"), found
    assert found["encoded"] == 'a["x"]'


@pytest.mark.parametrize("broken", ["cython", "compiler"])
def test_optional_build_falls_back_and_required_fails(workdir: Path, broken: str) -> None:
    """FASTSOCKJS_BUILD_EXTENSION=optional ships the twins, with a warning, when
    the extension cannot be built (a .pyx Cython rejects, or no working C
    compiler); required fails the build instead."""
    _require_module("build")
    src = workdir / f"broken-{broken}"
    _copy_tracked(src)
    env = _env()
    if broken == "cython":
        with (src / "fastsockjs" / "_frames.pyx").open("a") as f:
            f.write("\ndef broken(:\n")
    else:
        env["CC"] = "/bin/false"
        env["LDSHARED"] = "/bin/false"
    out = workdir / f"wheel-broken-{broken}"
    proc = _run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", out, src],
        timeout=600, env={**env, "FASTSOCKJS_BUILD_EXTENSION": "optional"},
    )
    assert "using the pure-Python twins" in proc.stdout + proc.stderr
    names, _ = _wheel_meta(_only(out, "fastsockjs-*.whl"))
    assert not [n for n in names if n.endswith((".so", ".pyd"))], sorted(names)
    failed = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir",
         str(workdir / f"wheel-broken-{broken}-required"), str(src)],
        env={**env, "FASTSOCKJS_BUILD_EXTENSION": "required"},
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert failed.returncode != 0, failed.stdout[-2000:]
