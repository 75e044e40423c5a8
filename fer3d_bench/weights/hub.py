"""timm, with the Hugging Face hub switched off: nothing the toolkit builds is ever downloaded.

timm fetches a model's configuration from the hub for an `hf-hub:` name even with
`pretrained=False`, and weights for `pretrained=True`. The toolkit builds only architectures of
a fixed list (train.config.BACKBONES), always with `pretrained=False`; this is the second
guard. huggingface_hub reads HF_HUB_OFFLINE from the environment once, when imported, but
consults `huggingface_hub.constants.HF_HUB_OFFLINE` before every request; so both are set, and
set again before each model is built, whoever imported what first.
"""

from __future__ import annotations

import os
from types import ModuleType

import huggingface_hub.constants
import timm


def offline_timm() -> ModuleType:
    """The timm module, after switching the hub offline (for this process and its children)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    return timm
