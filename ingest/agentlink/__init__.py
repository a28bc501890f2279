"""The server side of the owner's agent: enrolment, the control WebSocket, inventory and
the registry of connected agents."""
