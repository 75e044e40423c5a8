"""Run a protocol's folds as independent, resumable jobs, each leaving one result.json.

A run folder holds `run.json` (the dataset, manifests, configuration per variant and versions)
and one folder per fold job: `<protocol>/<repetition>/<fold>/` for the reference model and
`ablation-<variant>/<protocol>/<repetition>/<fold>/` for an ablation, each with its
`checkpoint.pt`, `metrics.jsonl` and, once finished, `result.json`. A job whose result.json
holds the same job block is skipped; one interrupted mid-training resumes from its checkpoint;
a folder holding another configuration is refused before anything trains.

- `plan`: check the dataset against the manifests, write run.json, list the jobs (no torch);
- `folder`: what an existing run folder may be resumed with, and what it refuses;
- `job`: one fold, trained and tested, its result.json written;
- `local`, `pool`, `cluster`: how jobs run (here one after another, a process pool, a
  submitit job array on Slurm or submitit's local executor);
- `launchers`: those behind one interface, registered by name (`LAUNCHERS`).
"""
