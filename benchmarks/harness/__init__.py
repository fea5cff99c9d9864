"""The harness the benchmarks share: `procs` starts and ends processes (a manager, agents,
helpers, multiprocessing children), times whole runs of a command and runs a benchmark's main;
`stats` measures processes and prints figures (percentiles, spreads, the header, the targets
table)."""
