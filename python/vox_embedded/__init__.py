"""vox_embedded: a Python implementation of the vox-embedded wire protocol,
written from docs/PROTOCOL.md (version 2).

The codecs, the bare conduit, the stable conduit's session and its
asyncio transport, the calls of section 12 and a command line:

* :mod:`vox_embedded.postcard`: the encoding primitives (section 1);
* :mod:`vox_embedded.framing`: the framed link codec (section 2);
* :mod:`vox_embedded.prologue`: the link prologue and its checks (section 3);
* :mod:`vox_embedded.bare`: the bare conduit over framed TCP with asyncio
  (section 4);
* :mod:`vox_embedded.stable_frames`: the stable conduit's frames (section 6);
* :mod:`vox_embedded.stable_session`: the stable conduit's session, both
  roles, without I/O (sections 5 to 10);
* :mod:`vox_embedded.stable_io`: the stable conduit over TCP or a serial
  byte stream with asyncio, and a blocking wrapper;
* :mod:`vox_embedded.rpc_frames`: the frames of calls, clock samples and the
  service fingerprint (section 12);
* :mod:`vox_embedded.rpc_host`: one session of calls, sans I/O
  (``RpcCore``) and on asyncio (``RpcHost``);
* :mod:`vox_embedded.values`: postcard values driven by the schemas of
  ``docs/schemas``, and their catalog of endpoints and topics;
* :mod:`vox_embedded.device`: the demo device's host (UART settings,
  opening a serial or TCP conduit, the host's clock endpoint);
* ``python3 -m vox_embedded``: the command line (``endpoints``, ``call``,
  ``topics``).

Every decoder raises (or, for the frame decoder, reports) only subclasses
of :class:`vox_embedded.errors.VoxError` on bad peer bytes.
"""

from __future__ import annotations

# r[impl py.package]

from .errors import VoxError
from .prologue import PROTOCOL_VERSION

__all__ = ["VoxError", "PROTOCOL_VERSION"]
