"""Running runs: creating run rows, executing them (foreground or in a detached worker)."""
