"""Synthetic datasets: small, deterministic fake copies of BU-3DFE, Bosphorus and
CalD3r & MenD3s in their native layouts and formats, so every feature runs without licensed data.

The generator shares no code with the readers (`fer3d_bench.formats`, `fer3d_bench.sources`):
each side follows the published format facts on its own, so a wrong guess cannot pass tests by
agreeing with itself.
"""

from fer3d_bench.synthetic.generate import PIXEL_CONVENTION, SampleConfig, make_sample

__all__ = ["PIXEL_CONVENTION", "SampleConfig", "make_sample"]
