"""Build the optional Cython decoder; without a compiler (or Cython) the install still succeeds.

An sdist ships the generated ``_decode.c`` so a machine without Cython (a Raspberry Pi) still compiles it.
"""
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
PYX = os.path.join("pose_fast", "_decode.pyx")
C_FILE = os.path.join("pose_fast", "_decode.c")


def _extensions():
    try:
        import numpy
    except ImportError:  # pragma: no cover - numpy is a build requirement
        return []
    include = [numpy.get_include()]
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
    args = [] if sys.platform == "win32" else ["-O3"]
    try:
        from Cython.Build import cythonize
    except ImportError:
        cythonize = None
    if cythonize is not None and os.path.exists(os.path.join(HERE, PYX)):
        ext = Extension("pose_fast._decode", [PYX], include_dirs=include, define_macros=macros,
                        extra_compile_args=args)
        return cythonize([ext], language_level=3, compiler_directives={"boundscheck": False,
                                                                      "wraparound": False,
                                                                      "cdivision": True})
    if os.path.exists(os.path.join(HERE, C_FILE)):
        return [Extension("pose_fast._decode", [C_FILE], include_dirs=include, define_macros=macros,
                          extra_compile_args=args)]
    return []


class OptionalBuildExt(build_ext):
    """Compile extensions, but never fail the install: the package falls back to numba or NumPy."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any compiler failure
            self._warn(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._warn(exc)

    @staticmethod
    def _warn(exc):
        sys.stderr.write(f"WARNING: pose_fast._decode was not compiled ({exc}); "
                         "decoding falls back to numba or NumPy.\n")


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
