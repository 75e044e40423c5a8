"""Pretrained backbone weight files: which file it is (by hash), what it fits, a safe import,
and loading one into a model's backbones (backbone.py).

Users bring the HSEmotion EfficientNet files themselves (nothing is downloaded); most are
whole-model pickles that need the timm version that wrote them and run code when loaded. This
room recognises them and recovers their tensors without running anything they name. A file it
cannot use raises WeightsError ("PATH: problem"). Every file is checked against the bounds of
limits.py before anything reads it, and timm is only used through hub.py, offline.
`train` imports it, never the reverse.
"""
