"""Styx state layer (see ../shared/DESIGN.md)."""
