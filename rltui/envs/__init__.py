"""Environments: tabular MDPs with exact P and r, Gymnasium control tasks, the text env."""
