"""Layer 1, io: reading and writing tables, atomic writes, folder locks, error locations.

Imports only `bayespref.errors`.
"""
