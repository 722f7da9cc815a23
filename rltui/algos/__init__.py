"""Algorithms: one module each, readable top to bottom, reporting to a Recorder."""
