"""Notifications: CAP 1.2 alerts and notices, delivered through a persistent outbox."""
