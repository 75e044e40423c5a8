"""Reading what Slurm prints, in the formats its manuals give (sinfo(1), squeue(1), gres.conf(5));
no cluster needed. The cluster tests (test_slurm.py) read the same from a real one."""

import math

import pytest

from fer3d_bench.evaluation import slurm


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("infinite", math.inf),
        ("UNLIMITED", math.inf),
        ("30", 30),  # minutes
        ("10:00", 10),  # minutes:seconds
        ("4:00:00", 240),  # hours:minutes:seconds
        ("1-12:00:00", 2160),  # days-hours:minutes:seconds
        ("2-00:30:30", 2880 + 30.5),
    ],
)
def test_time_limits_in_every_form_slurm_prints(text, expected):
    assert slurm.minutes(text) == expected


@pytest.mark.parametrize(
    ("gres", "expected"),
    [
        ("(null)", 0),
        ("gpu:1", 1),
        ("gpu:a100:4(S:0-1)", 4),  # typed, with socket affinity
        ("gpu:a100:2,gpu:v100:2", 4),
        ("gpu:2,shard:8", 2),  # shards are not GPUs
        ("mps:100", 0),
    ],
)
def test_gpus_counted_from_a_nodes_gres(gres, expected):
    assert slurm.gpus(gres) == expected


def test_the_request_names_every_resource_no_node_has():
    nodes = [slurm.Node("a", 32, 256_000, 4, 2880), slurm.Node("b", 64, 512_000, 0, 2880)]
    assert slurm.unmet(slurm.Request(8, 16_384, 1, 240), nodes) == []
    unmet = slurm.unmet(slurm.Request(128, 1_000_000, 8, 5000), nodes)
    assert [line.split(" (")[0] for line in unmet] == [
        "each job asks for 128 CPUs",
        "each job asks for 1000000 MB of memory",
        "each job asks for 8 GPUs",
        "each job asks for 5000 minutes",
    ]
    # every resource exists somewhere, but not on one node together: GPUs on a, CPUs on b
    assert slurm.unmet(slurm.Request(48, 16_384, 1, 240), nodes) == [
        "no single node has every resource the job asks for at once"
    ]


@pytest.mark.parametrize(
    ("state", "reason", "never"),
    [
        ("PENDING", "PartitionConfig", True),
        ("PENDING", "PartitionTimeLimit", True),
        ("PENDING", "QOSMaxGRESPerJob", True),
        ("PENDING", "AssocMaxCpuPerJobLimit", True),
        ("PENDING", "Resources", False),  # waiting for nodes to free up
        ("PENDING", "Priority", False),
        ("PENDING", "QOSMaxJobsPerUserLimit", False),  # ends when the user's other jobs do
        ("PENDING", "ReqNodeNotAvail", False),  # nodes down or reserved: may come back
        ("RUNNING", "None", False),
    ],
)
def test_pending_reasons_that_never_end(state, reason, never):
    assert (slurm.never_reason(slurm.QueuedJob("1_0", state, reason)) is not None) is never
