"""Build-time generators of the documentation site (called from docs/conf.py)."""
