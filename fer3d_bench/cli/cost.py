"""What the `paper` preset costs on a machine without a GPU, said once when a command starts.

`--preset` defaults to `paper` (two EfficientNet-B2 streams at 260 px, 20 epochs), which is
sized for a GPU. On the CPU a fold of it runs for days; the line below says so, with its basis,
before the first epoch rather than after the first hour.

The basis is a measurement, not a model of the machine: one AdamW step of the reference model
(forward and backward of both streams, batch 8) timed with torch on 2 CPU cores of the
development machine (shared with other work, so an upper-side figure): 4.7 s per training
sample for `paper`, 0.055 s for `cpu-small`. A fold's cost is that times its training samples
times its epochs; test-fold scoring adds a little. Good to an order of magnitude, no better.

The device module is loaded when a command asks (as the command registry loads commands), so
that `fer3d-bench tune --help` does not wait for torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

PAPER = "paper"
SUGGESTED = "cpu-small"
# seconds per training sample and epoch on 2 CPU cores (see the module docstring)
CPU_SECONDS_PER_SAMPLE = {PAPER: 4.7, SUGGESTED: 0.055}
PAPER_EPOCHS, SUGGESTED_EPOCHS = 20, 8
TRAINING_SHARE = 0.8  # a 5-fold protocol trains on 4/5 of the samples


def trains_on_cpu(placement) -> bool:
    """Whether a fold placed so trains on the CPU here (False where it cannot be resolved:
    the command itself then says why)."""
    device = importlib.import_module("fer3d_bench.train.device")
    errors = importlib.import_module("fer3d_bench.errors")
    try:
        return device.resolve(placement).device == "cpu"
    except errors.Fer3dError:
        return False


def sample_count(dataset: Path | None) -> int | None:
    """Samples in a merged file, or None where it cannot be read (the command says why)."""
    if dataset is None:
        return None
    reader = importlib.import_module("fer3d_bench.dataset.reader")
    try:
        with reader.H5Dataset(dataset) as data:
            return len(data)
    except Exception:  # noqa: BLE001  (only an estimate: the command reports the real problem)
        return None


def paper_on_cpu(samples: int | None, epochs: int | None = None) -> str:
    """The one line: what a paper fold costs on this CPU, and the cheaper preset."""
    epochs = epochs or PAPER_EPOCHS
    per_sample = CPU_SECONDS_PER_SAMPLE[PAPER]
    if samples:
        training = max(1, round(samples * TRAINING_SHARE))
        of = f"~{training} training samples (4/5 of the {samples} in the dataset)"
    else:
        training, of = 1000, "1000 training samples"
    hours = training * epochs * per_sample / 3600
    ratio = (per_sample * PAPER_EPOCHS) / (CPU_SECONDS_PER_SAMPLE[SUGGESTED] * SUGGESTED_EPOCHS)
    return (
        f"note: preset paper on the CPU: a fold of {epochs} epoch{'' if epochs == 1 else 's'} "
        f"over {of} takes about "
        f"{_duration(hours)} here (basis: {per_sample} s per training sample and epoch, "
        f"measured for the two B2 streams at 260 px on 2 CPU cores); --preset {SUGGESTED} "
        f"(B0 at 112 px, {SUGGESTED_EPOCHS} epochs) costs about {ratio:.0f}x less"
    )


def _duration(hours: float) -> str:
    """An order of magnitude in words: minutes, hours or days."""
    if hours < 1:
        count, unit = max(1, round(hours * 60)), "minute"
    elif hours < 48:
        count, unit = round(hours), "hour"
    else:
        count, unit = round(hours / 24), "day"
    return f"{count} {unit}{'' if count == 1 else 's'}"


def paper_on_cpu_note(preset: str, placement, dataset: Path | None, epochs=None) -> str | None:
    """`paper_on_cpu` when `preset` is paper and the fold trains here on the CPU, else None."""
    if preset == PAPER and trains_on_cpu(placement):
        return paper_on_cpu(sample_count(dataset), epochs)
    return None


def noted(echo: Callable[[str], None], note: str | None) -> Callable[[str], None]:
    """`echo` that says `note` before its first line: the note comes once the command has
    checked what it was given and says something, never before a refusal."""
    waiting = [note] if note else []

    def said(line: str) -> None:
        while waiting:
            echo(waiting.pop())
        echo(line)

    return said
