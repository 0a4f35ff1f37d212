"""The root of every error this package raises or reports.

Each module derives its own typed errors from :class:`VoxError`, so a
caller that feeds peer bytes to any decoder of the package can catch
``VoxError`` and be sure nothing else (no ``IndexError``, ``ValueError`` or
``struct.error``) escapes for bad input. Caller mistakes on the *encoding*
side (a value out of range for its field) raise ``ValueError`` instead:
those are bugs of the caller, not bytes from a peer.
"""

from __future__ import annotations

__all__ = ["VoxError"]


class VoxError(Exception):
    """Base class of every error about bytes received from a peer."""
