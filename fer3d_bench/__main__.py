"""`python -m fer3d_bench ...`: the same commands as `fer3d-bench ...`."""

from fer3d_bench.cli import main

main()
