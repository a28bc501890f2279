"""The relay's optional compiled send loop (``relay/_fastpath.c``; everything else is in
pyproject.toml). ``optional=True``: without a C compiler or Python's headers the package still
installs, without it, and the relay sends through its pure-Python loop (``relay.fastpath``)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("relay._fastpath", ["relay/_fastpath.c"], optional=True)])
