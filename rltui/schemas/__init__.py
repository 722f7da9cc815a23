"""Parameter schemas (pydantic, torch-free) and registry entries, one module per family."""
