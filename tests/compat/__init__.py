"""Compatibility tests: programs written for pycos 4.12 (and asyncoro 4.5) run on this package.

``fetch`` brings the released example programs from the package index at test time (they are
never stored here); ``programs/`` holds small programs run both on this package and on the
released pycos 4.12.2, whose outputs ``test_side_by_side`` compares.
"""
