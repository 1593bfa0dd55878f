"""Chunked transfer encoding of lowhaio request bodies.

A skeleton for now: the wrapper arrives in a later issue.
"""

__all__: list[str] = []
__version__ = "0.1.0"
