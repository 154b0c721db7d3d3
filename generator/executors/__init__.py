"""Executors: where a render job's shards are rendered. The job (generator/job.py) plans the shards,
validates every input, claims the output folder and owns the manifest; an executor only runs the
planned shards and reports back. Every executor is one function with this signature:

    run(ctx: JobContext, tasks: list[(shard_index, first_sample, count)],
        progress: Callable[[int], None],   # images finished since the last call
        finished: Callable[[dict], None])  # a shard's manifest entry, once its file is final

It returns when every task is done, or raises `WorkerFailed` (a FacegenError naming the worker's
own error and the shard it was on) after stopping its other workers; shards reported through
`finished` before that stay, so the same command resumes.
"""

from facegen.errors import FacegenError


class WorkerFailed(FacegenError):
    """A render worker died or raised: the job stops, finished shards are kept."""

    exit_code = 1
