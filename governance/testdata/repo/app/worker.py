"""Background jobs."""


def run(jobs):
    for job in jobs:
        if job.ready:
            try:
                if job.retry:
                    job.run()  # TODO(copilot): back off between retries
            except Exception:
                pass
