"""Styx optimizer layer (see ../shared/DESIGN.md)."""
