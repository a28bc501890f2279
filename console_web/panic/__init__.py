"""The panic app\x27s pages."""
