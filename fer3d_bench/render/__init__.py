"""Depth rendering aligned with each dataset's RGB: camera fitting, renderers, quality."""
