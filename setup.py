"""The one compiled part of physlm: the generator's rejection loop in C (physlm/igsm/draws.py explains it).

Optional: without a C compiler the install goes on and the generator runs every draw in Python, with the same
output. Everything else about the package is in pyproject.toml.
"""

import sys

from setuptools import Extension, setup

# floats round as Python's do: no fused multiply-add, and sin and cos called as Python's gauss calls them (gcc
# would fuse the pair into one sincos call)
flags = [] if sys.platform == "win32" else ["-O2", "-ffp-contract=off", "-fno-builtin-sin", "-fno-builtin-cos"]
setup(ext_modules=[Extension("physlm.igsm._draws", ["physlm/igsm/_draws.c"], extra_compile_args=flags, optional=True)])
