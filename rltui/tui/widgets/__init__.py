"""Widgets the screens are built from: plots, value heatmaps, state drawings, bars."""
