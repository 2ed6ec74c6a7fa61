"""Build the optional Cython kernels (the decoder's and the tracker's); without a compiler (or Cython) the install
still succeeds and the package uses their NumPy references.

An sdist ships the generated C files so a machine without Cython (a Raspberry Pi) still compiles them.
"""
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
#: extension name -> what the package falls back to without it
KERNELS = {"pose_fast._decode": "decoding falls back to numba or NumPy",
           "pose_fast._track": "the tracker falls back to NumPy"}


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
    extensions = []
    for name in KERNELS:
        stem = os.path.join(*name.split("."))
        if cythonize is not None and os.path.exists(os.path.join(HERE, stem + ".pyx")):
            ext = Extension(name, [stem + ".pyx"], include_dirs=include, define_macros=macros,
                            extra_compile_args=args)
            extensions += cythonize([ext], language_level=3, compiler_directives={"boundscheck": False,
                                                                                 "wraparound": False,
                                                                                 "cdivision": True})
        elif os.path.exists(os.path.join(HERE, stem + ".c")):
            extensions.append(Extension(name, [stem + ".c"], include_dirs=include, define_macros=macros,
                                        extra_compile_args=args))
    return extensions


class OptionalBuildExt(build_ext):
    """Compile extensions, but never fail the install: the package falls back to its NumPy kernels."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any compiler failure
            for name, fallback in KERNELS.items():
                self._warn(name, fallback, exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._warn(ext.name, KERNELS.get(ext.name, "the package falls back to NumPy"), exc)

    @staticmethod
    def _warn(name, fallback, exc):
        sys.stderr.write(f"WARNING: {name} was not compiled ({exc}); {fallback}.\n")


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
