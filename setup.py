"""Build the optional Cython kernels.

FASTSOCKJS_BUILD_EXTENSION chooses what happens:
  required  the extension must compile, or the build fails;
  skip      build only the pure-Python package (the twins are used);
  optional  (default) try to compile; on failure warn and ship the twins.
"""

import os
import sys
import warnings

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

MODE = os.environ.get("FASTSOCKJS_BUILD_EXTENSION", "optional").strip().lower()
if MODE not in ("required", "skip", "optional"):
    sys.exit(f"FASTSOCKJS_BUILD_EXTENSION must be required, skip or optional, not {MODE!r}")

HERE = os.path.dirname(os.path.abspath(__file__))


def _sources() -> dict[str, str]:
    """Extension name -> source. Every .pyx of the package is an extension (a twin
    in pure Python stands beside each); so is every ``X_py.py`` with an ``X.pxd``
    beside it, compiled as it is (Cython's pure-Python mode) into ``X``: the
    ``.pxd`` is named after the module built, which is how Cython finds it."""
    found = {}
    for folder, _dirs, files in os.walk(os.path.join(HERE, "fastsockjs")):
        package = os.path.relpath(folder, HERE).replace(os.sep, ".")
        for name in files:
            path = os.path.relpath(os.path.join(folder, name), HERE)
            if name.endswith(".pyx"):
                found[package + "." + name[: -len(".pyx")]] = path
            elif name.endswith(".pxd") and name[: -len(".pxd")] + "_py.py" in files:
                found[package + "." + name[: -len(".pxd")]] = path[: -len(".pxd")] + "_py.py"
    return dict(sorted(found.items()))


SOURCES = _sources()


class OptionalBuildExt(build_ext):
    """build_ext that degrades to the pure-Python twins when allowed."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any compiler failure
            self._failed(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        if MODE == "required":
            raise
        warnings.warn(
            f"fastsockjs: C extension not built ({exc}); using the pure-Python twins",
            stacklevel=1,
        )


def extensions() -> list[Extension]:
    if MODE == "skip":
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        if MODE == "required":
            raise
        warnings.warn("fastsockjs: Cython missing; using the pure-Python twins", stacklevel=1)
        return []
    exts = [
        Extension(name, [source], extra_compile_args=[] if sys.platform == "win32" else ["-O3"])
        for name, source in SOURCES.items()
    ]
    try:
        return cythonize(
            exts,
            compiler_directives={
                "language_level": "3",
                "boundscheck": False,
                "wraparound": False,
                "cdivision": True,
                # A pure-Python module's annotations are for mypy: only its .pxd types it.
                "annotation_typing": False,
            },
            quiet=True,
        )
    except Exception as exc:  # a .pyx that does not translate is a failed build too
        if MODE == "required":
            raise
        warnings.warn(
            f"fastsockjs: Cython failed ({exc}); using the pure-Python twins", stacklevel=1
        )
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
