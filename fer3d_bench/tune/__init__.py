"""Hyperparameter search by random search with Optuna, on validation folds the test never sees.

The paper tuned batch size, learning rates, weight decay, lambda1, lambda2 and S by random
search with Optuna and published no ranges; `fer3d-bench tune` does the same on one fold of a
manifest. Only that fold's training subjects are used: they are split into subject-independent
inner folds, a trial trains on each inner-training part and is scored on its validation part,
and the fold's test subjects never reach a trial. The best trial becomes a `--config` TOML for
`fer3d-bench evaluate`.

- `space`: the search space, as data (ranges are ours: the paper gives none);
- `nested`: the inner folds of a fold's training subjects;
- `sampler`: random draws that depend only on (seed, trial number, parameter name);
- `storage`: Optuna storages (RDB URLs, `journal:PATH`), heartbeats and stale trials;
- `study`: the trials themselves, shared by any number of workers, and the best one;
- `output`: the best trial as a TOML config file with its provenance.
"""

from fer3d_bench.errors import Fer3dError

# Heartbeats: a running trial records one every HEARTBEAT_INTERVAL_S seconds; one silent for
# GRACE_PERIOD_S seconds belongs to a killed worker and is failed and retried (the next trial any
# worker starts finds it). Long enough for a loaded file system, short enough that a restarted
# worker picks the lost trial up within minutes; tests use 1 and 2 seconds.
HEARTBEAT_INTERVAL_S = 60
GRACE_PERIOD_S = 240


class TuneError(Fer3dError):
    """A search cannot start or go on as asked: the message names the file, study or option."""
