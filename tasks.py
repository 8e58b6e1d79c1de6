"""invoke entry point of this repository: the library's tasks, as an app repository gets them
(``from buildtools.tasks import ns``), plus ``bench``, which only a checkout can run.

``bench`` lives here, not in the package, so the installed package carries no task that needs
``benchmarks/``, ``tests/`` or ``testbed/``. It imports the benchmarks only when it runs: every
other task (and case 4's and 7's timings of them) pays nothing for it.
"""

from __future__ import annotations

from invoke import Collection, Context, Task, task

from buildtools.cli.process import reported
from buildtools.tasks import ns as library_ns
from buildtools.tasks import settings


@task(
    help={
        "only": "run one case: 1 rebuild, 2 re-release, 3 sidecar throughput, 4 overhead, "
        "5 fresh CI runner, 6 image sizes, 7 no-op build and version, 8 promotion, "
        "9 registry tidy (prune and releases on 2,000 tags)",
        "runs": "runs per figure, reported as medians (default: 3; case 4 runs at least 5)",
        "cold-runs": "cold (no-cache) app builds in case 1 (default: 2; each takes ~30 s)",
        "duration": "seconds per wrk run in case 3 (default: 5)",
    }
)
def bench(c: Context, only: int = 0, runs: int = 3, cold_runs: int = 2, duration: int = 5) -> None:
    """Measure what the tool is for against baselines; write benchmarks/RESULTS.md."""
    with reported():
        from benchmarks import run

        run.main(
            settings(c),
            only=int(only),
            runs=int(runs),
            cold_runs=int(cold_runs),
            duration=int(duration),
        )


def with_tasks(base: Collection, *extra: Task) -> Collection:
    """A new collection holding ``base``'s tasks, sub-collections and configuration plus
    ``extra``: the library's own collection is left as app repositories import it."""
    ns = Collection()
    for name, found in base.tasks.items():
        ns.add_task(found, name)
    for name, sub in base.collections.items():
        ns.add_collection(sub, name)
    ns.configure(base.configuration())
    for added in extra:
        ns.add_task(added)
    return ns


ns = with_tasks(library_ns, bench)
