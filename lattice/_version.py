"""The single source of lattice's version; packaging metadata and cache keys read it from here."""

__version__ = "0.1.0"
