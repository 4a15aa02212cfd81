"""Styx jobs layer (see ../shared/DESIGN.md)."""
