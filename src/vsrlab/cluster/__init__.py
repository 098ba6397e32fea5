"""Running jobs on a cluster: the stop signals of a job process (:mod:`~vsrlab.cluster.signals`), SLURM's
view of jobs (:mod:`~vsrlab.cluster.slurm`), the process of a SLURM task (:mod:`~vsrlab.cluster.task`)
and the launcher's submission and watch of a sweep's jobs (:mod:`~vsrlab.cluster.launcher`). Nothing
here imports torch."""
