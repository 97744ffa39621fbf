"""The exchange states and the client pause reasons, shared by ``server`` and ``upstream``.

Their own module: the compiled ``server`` and ``upstream`` cimport each other's types, so neither
can import names from the other while it initialises. ``states.pxd`` declares the same numbers
as C constants for the compiled build (``tests/speedups/test_engine_build.py`` holds the two
equal).
"""

# Exchange states
WAITING = 0  # handed to the handler, not yet forwarded nor answered
CONNECTING = 1  # waiting for an upstream connection
FORWARDING = 2  # upstream attached, relaying
TUNNEL = 3  # upgraded: raw bytes both ways
DONE = 4

# Reasons to pause reading from the client (a bit mask: reading resumes when none is left).
PAUSE_PIPELINE = 1
PAUSE_BODY = 2
PAUSE_UPSTREAM = 4
