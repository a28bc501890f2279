"""RTCC video aggregation server: the application core and the contracts every package shares."""

__version__ = "0.1.0"
