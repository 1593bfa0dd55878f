"""Follow HTTP redirects around a lowhaio request.

A skeleton for now: the wrapper arrives in a later issue.
"""

__all__: list[str] = []
__version__ = "0.1.0"
