"""asyncoro's ``asyncoro.asyncfile``: asynchronous files and pipes.

``AsyncFile`` and ``AsyncPipe`` are pycos's (``pycos.asyncfile``), with the same methods and
results (``read``, ``readline``, ``write``, ``communicate`` … used with ``yield``). Imports only
``pycos.asyncfile``.
"""

from pycos.asyncfile import AsyncFile, AsyncPipe

__all__ = ["AsyncFile", "AsyncPipe"]
