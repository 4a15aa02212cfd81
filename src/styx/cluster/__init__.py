"""Styx cluster layer (see ../shared/DESIGN.md)."""
