"""The one compiled part of physlm: the generator's rejection loop in C (physlm/igsm/draws.py explains it).

Optional: without a C compiler the install goes on and the generator runs every draw in Python, with the same
output. Everything else about the package is in pyproject.toml.
"""

import sys

from setuptools import Extension, setup

flags = [] if sys.platform == "win32" else ["-O2", "-ffp-contract=off"]  # floats round as Python's do
setup(ext_modules=[Extension("physlm.igsm._draws", ["physlm/igsm/_draws.c"], extra_compile_args=flags, optional=True)])
