"""Peers for the side-by-side benchmark: the same noop workload (enqueue N, process N, wait
for every result) on the job queues people use today, each installed by its script.

Every peer script is one file that runs twice: in this project's Python it prepares its
environment (a venv with the peer's PyPI package, redis-server on loopback when it needs
one), then it runs itself inside that venv to drive the peer's own workers. It prints one
JSON line with its figures, and stops everything it started.
"""
