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

# Every .pyx of the package is an extension (a twin in pure Python stands beside each).
EXTENSIONS = sorted(
    "fastsockjs." + name[: -len(".pyx")]
    for name in os.listdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fastsockjs"))
    if name.endswith(".pyx")
)


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
        Extension(name, [name.replace(".", "/") + ".pyx"], extra_compile_args=[] if sys.platform == "win32" else ["-O3"])
        for name in EXTENSIONS
    ]
    try:
        return cythonize(
            exts,
            compiler_directives={
                "language_level": "3",
                "boundscheck": False,
                "wraparound": False,
                "cdivision": True,
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
