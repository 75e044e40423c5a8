"""The training environment: what a command line says about training beyond the configuration,
built once there and carried whole by every spec and job to the loop (no torch here: a run is
planned with it on a login node).

The configuration (`train.config`) decides the numbers a fold ends with; the environment decides
where and from what it starts: the pretrained weights, the device and threads, whether a
progress bar is drawn, whether flagged training samples are left out, and how fast it trains
(`Speed`: choices that change the speed and, at most, the floating-point order of the sums, so
they are recorded with the run but are no part of a fold's identity; a fold may be resumed with
other ones).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from fer3d_bench.errors import ConfigError
from fer3d_bench.weights.request import PretrainedWeights

AUTO = "auto"  # CUDA when the training machine has it: resolved there, once (train.device)
# torch.compile of the model: "off"; "on" (inductor's default mode); "cuda-graphs" (mode
# "reduce-overhead": kernels replayed as CUDA graphs, one per static batch shape; CUDA only)
COMPILE_MODES = ("off", "on", "cuda-graphs")


@dataclass(frozen=True)
class Speed:
    """Throughput levers: how a fold trains, never what it trains (that is `TrainConfig`).

    Each changes at most the order of floating-point sums (a fused kernel, another memory
    layout, a compiled graph), so a fold trained with any of them is the same job: they are
    recorded beside the device (run.json, result.json) and left out of the fold's identity and
    its checkpoint's signature. The ones that change the numbers themselves, the micro-batch
    (`batch_size`: batch-norm sees other batches) and the AMP dtype (`amp_dtype`), are
    configuration. `fused_adamw` and compile "cuda-graphs" run on CUDA only.
    """

    compile: str = "off"  # one of COMPILE_MODES
    fused_adamw: bool = False  # torch.optim.AdamW(fused=True): one kernel for all parameters
    # None: on CUDA (faster there), not on the CPU (slower there); resolved with the device
    channels_last: bool | None = None

    def __post_init__(self) -> None:
        if self.compile not in COMPILE_MODES:
            raise ConfigError(
                f"--compile {self.compile}: expected one of {', '.join(COMPILE_MODES)}"
            )

    def cuda_only(self) -> list[str]:
        """The options asked for that need a CUDA device, as the command line names them."""
        asked = {
            "--compile cuda-graphs": self.compile == "cuda-graphs",
            "--fused-adamw": self.fused_adamw,
        }
        return [name for name, on in asked.items() if on]

    def refusal(self, device: str) -> str | None:
        """Why these levers cannot train on `device` (a resolved one, or "cpu" as asked), or
        None: on a CPU those that need CUDA would fail inside torch or do nothing, either way
        not what was asked."""
        asked = self.cuda_only()
        if not asked or device.startswith("cuda"):
            return None
        one = len(asked) == 1
        return (
            f"{' and '.join(asked)} {'needs' if one else 'need'} a CUDA device; this fold trains "
            f"on {device} (leave {'it' if one else 'them'} out, or train with --device cuda)"
        )

    def record(self) -> dict:
        """What run.json and result.json record (under "speed")."""
        return asdict(self)


@dataclass(frozen=True)
class Placement:
    """Where a fold trains, how it shows it, and how fast (`Speed`)."""

    device: str = AUTO  # "auto" until resolved on the training machine, then "cpu" or "cuda"
    threads: int | None = None  # torch threads; None: the process's allocated CPUs
    progress: bool = False  # a bar per epoch
    speed: Speed = field(default_factory=Speed)

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
