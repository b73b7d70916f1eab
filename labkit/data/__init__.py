"""labkit.data (being built; see docs/architecture.md for its public names)."""
__all__: list[str] = []
