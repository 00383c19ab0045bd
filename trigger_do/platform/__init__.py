"""Platforms implement the ports; the engine imports none of them."""
