"""Pretrained backbone weight files: which file it is (by hash), what it fits, and a safe import.

Users bring the HSEmotion EfficientNet files themselves (nothing is downloaded); most are
whole-model pickles that need the timm version that wrote them and run code when loaded. This
room recognises them and recovers their tensors without running anything they name. `train`
imports it, never the reverse.
"""
