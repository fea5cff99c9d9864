"""The node agent: join, reconcile loop, git sync, process supervision, probes."""
