"""pynetwork's ``backend2`` module name for the byte converters: ``import pycos.swarm.backend2
as bk`` then ``bk.str_to_bytes(...)``, ``bk.safe_print(...)`` as in the seed's tutorials.
Re-exports ``pycos.swarm.codec``; imports nothing else.
"""

from .codec import (
    bytes_to_int,
    bytes_to_str,
    int_to_bytes,
    json_bytes_to_obj,
    obj_to_json_bytes,
    safe_print,
    str_to_bytes,
)

__all__ = ["str_to_bytes", "bytes_to_str", "int_to_bytes", "bytes_to_int", "obj_to_json_bytes",
           "json_bytes_to_obj", "safe_print"]
