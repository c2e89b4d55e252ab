"""SLURM: the job this process runs in, and putting it back in the queue before its time limit.

With `#SBATCH --signal=B:USR1@120` SLURM sends SIGUSR1 two minutes before the job's time limit; a `--run-name` run
then stops after its current step with its checkpoint written, and `scontrol requeue` queues the job again: the
requeued job's same command resumes the run (training/named_runs.py)."""

import os
import subprocess

from utils.errors import InputError

REQUEUE_TIMEOUT_S = 60  # scontrol asks the controller; a busy one may take a while, a dead one must not hang us


def job_id() -> str | None:
    """The SLURM job id (`SLURM_JOB_ID`), or None outside SLURM."""
    return os.environ.get("SLURM_JOB_ID") or None


def requeue(job: str) -> None:
    """`scontrol requeue JOB`: SLURM ends the job and queues it again with the same command. InputError with
    scontrol's own words when it cannot."""
    command = ["scontrol", "requeue", job]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=REQUEUE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"{' '.join(command)}: {exc}") from None
    if done.returncode:
        raise InputError(f"{' '.join(command)} failed (exit {done.returncode}): "
                         f"{(done.stderr or done.stdout).strip() or 'no message'}")
