"""Styx providers layer (see ../shared/DESIGN.md)."""
