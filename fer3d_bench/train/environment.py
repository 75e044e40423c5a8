"""The training environment: what a command line says about training beyond the configuration,
built once there and carried whole by every spec and job to the loop (no torch here: a run is
planned with it on a login node).

The configuration (`train.config`) decides the numbers a fold ends with; the environment decides
where and from what it starts: the pretrained weights, the device and threads, whether a
progress bar is drawn, and whether flagged training samples are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from fer3d_bench.weights.request import PretrainedWeights

AUTO = "auto"  # CUDA when the training machine has it: resolved there, once (train.device)


@dataclass(frozen=True)
class Placement:
    """Where a fold trains and how it shows it."""

    device: str = AUTO  # "auto" until resolved on the training machine, then "cpu" or "cuda"
    threads: int | None = None  # torch threads; None: the process's allocated CPUs
    progress: bool = False  # a bar per epoch

    @property
    def resolved(self) -> bool:
        return self.device != AUTO


@dataclass(frozen=True)
class TrainingEnvironment:
    weights: PretrainedWeights = field(default_factory=PretrainedWeights)
    placement: Placement = field(default_factory=Placement)
    exclude_flagged: bool = False  # leave training samples flagged low-quality out

    def placed(self, **changes) -> TrainingEnvironment:
        """The same environment with some placement fields changed (threads, progress...)."""
        return replace(self, placement=replace(self.placement, **changes))
