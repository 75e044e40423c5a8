"""fer3d-bench: reproducible RGB+depth facial expression recognition benchmark."""

__version__ = "0.18.0"
