"""Setuptools shim; the project metadata lives in pyproject.toml.

It adds the one compiled module, ``pycos.proto._wirecheck`` (the checker of the wire's pickle
dialect). It is optional: without a C compiler the install still succeeds and pycos uses the
same checker written in Python (``pycos.proto.wirecheck.check``), which is slower on large
payloads.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("pycos.proto._wirecheck", ["pycos/proto/_wirecheck.c"], optional=True),
    ],
)
