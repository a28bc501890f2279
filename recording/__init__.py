"""Recording a camera's original encoded bytes: what the server's evidence and the owner's
agent's rolling buffer share.

Segment files hashed as they are written, with a frame index beside them (``segments``); the
recorder that cuts a camera's stream into segments on a writer thread (``recorder``); the store
of segments and legal holds (``store``, ``holds``); closing what a crash left open and deleting
segments (``upkeep``); UTC times (``times``). Imports only ``rtcc``.
"""
