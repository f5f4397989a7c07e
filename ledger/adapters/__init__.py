"""Adapters: everything that touches a library, a disk, a network or a clock."""
