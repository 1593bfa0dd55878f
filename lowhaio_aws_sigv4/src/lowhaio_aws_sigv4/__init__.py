"""AWS Signature Version 4 for lowhaio requests.

A skeleton for now: the wrapper arrives in a later issue.
"""

__all__: list[str] = []
__version__ = "0.1.0"
