"""Tests of accounts, sessions, consent, audit, URL safety and route policies."""
