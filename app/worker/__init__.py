"""The job worker behind `rise worker`: claims queued jobs (retraining, re-annotation) with a lease and heartbeat,
runs training in a supervised subprocess, streams its progress into the job row, and registers model versions.

    loop.py            Worker, WorkerConfig: recover lost jobs, apply retraining policies, claim, run
    lease.py           LeaseKeeper: heartbeats, and the exceptions that end a job early (cancel, lost lease, stop)
    context.py         JobContext: the job's folder and log, keeping the lease while a subprocess or thread works
    train_job.py       a retraining: snapshot, pipeline, checks, comparison, registration
    annotate_job.py    a re-annotation of unreviewed items by a model version
    process.py         the supervised subprocess and file tails
    progress.py        progress events -> the row's stage, step and reward/loss curves
    supervise.py       `python -m app.worker.supervise -- CMD`: kills CMD's process group if the worker dies
    evaluate_version.py `python -m app.worker.evaluate_version`: score the serving model on a job's held-out items

Nothing is imported here: `supervise` runs as its own small process for every job and must start without loading
torch or the database layer. Import `app.worker.loop` for the worker itself.
"""
