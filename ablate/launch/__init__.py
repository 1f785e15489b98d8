"""Many workers on one study: local worker processes (``--workers``/``--gpus``), Slurm job
arrays through submitit (``ablate launch slurm``) and what each worker runs.

* ``slots``: how many workers, which GPU and how many CPU threads each gets;
* ``worker``: a worker's loop over the serialised run specs, and its process entry;
* ``local``: start the workers on this machine, show their runs, stop them on a signal;
* ``display``: one progress display of every worker's run, read from the runs database;
* ``slurm``: the submitit job array and its batch script; ``jobs``: what each task runs;
* ``checks``: SQLite refused across nodes, a checkpoint folder other nodes cannot see;
* ``status``: the launches a folder recorded and the run each task is on.
"""
