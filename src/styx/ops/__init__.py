"""Styx ops layer (see ../shared/DESIGN.md)."""
