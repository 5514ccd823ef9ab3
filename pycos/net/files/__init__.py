"""File transfer between nodes (SPEC §3.6): ``send_file`` and ``del_file``.

Modules: ``api`` (the two operations and their handlers on the receiving node), ``send`` (the
sending end, on a thread), ``receive`` (the receiving end, on a thread; frame I/O and limits
both ends share), ``paths`` (the sandbox rules for names and directories). The dialogue on the
wire is ``pycos.proto.filedialog``. Imports the standard library, ``pycos.core``,
``pycos.errors``, ``pycos.proto`` and the rest of ``pycos.net``.
"""

__all__: list[str] = []
