"""How this folder was made: a run folder exactly as fer3d-bench 0.7.0 wrote it.

The tests read it to prove that run folders of earlier versions still load, report byte for
byte as the checked-in report.md/report.json say, and resume without retraining. The results
and run.json are 0.7.0's; the two report files were regenerated deliberately by 0.10.0 and
0.11.0 (the title now says "not pretrained", the published rows are the paper's; the
differences from the paper are still the ones 0.7.0 recorded, 30 epochs and efficientnet_b2
included), with `fer3d_bench.report.write_report` on a copy of this folder. Made with a 0.7.0
checkout (commit 1e5ec2b) first on the path:

    git worktree add /tmp/v070 1e5ec2b
    PYTHONPATH=/tmp/v070 python tests/data/run-0.7.0/make.py /tmp/run-base

then `run/` copied here without its checkpoint.pt files and figures (binary, and not read).
The sample is the evaluation tests' own three-subject one (seed 31), so its dataset
fingerprint and manifest are the ones those tests build.
"""

import sys
from pathlib import Path

from fer3d_bench import evaluate as ev  # the 0.7.0 module, before the evaluation package
from fer3d_bench import splits as sp
from fer3d_bench.dataset.build import BuildOptions, build_dataset
from fer3d_bench.report import write_report
from fer3d_bench.sample import SampleConfig, make_sample

base = Path(sys.argv[1])
small = SampleConfig(
    seed=31, bu3dfe_subjects=3, bosphorus_subjects=0, cald3r_subjects=0, mend3s_subjects=0
)
make_sample(base / "sample", small, workers=1, progress=False)
build_dataset(
    {"bu3dfe": base / "sample" / "bu3dfe"},
    base / "merged.h5",
    BuildOptions(size=64),
    render_dir=base / "render",
    progress=False,
)
items = sp.items_from_h5(base / "merged.h5")
protocol = sp.load_protocol("bu3dfe-legacy")
sp.write_manifest(sp.make_manifest(protocol, items, "test"), base / "m")
spec = ev.EvalSpec(
    dataset=base / "merged.h5",
    protocols=("bu3dfe-legacy",),
    out=base / "run",
    manifests=base / "m",
    preset="tiny",
    overrides={"epochs": 1},
    repetitions=1,
    max_folds=2,
    device="cpu",
)
ev.run_local(ev.plan(spec).jobs, progress=False)
write_report(base / "run")
