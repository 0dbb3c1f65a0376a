"""Decoding what users send: JSON rows and uploaded images, checked fast and named precisely."""
