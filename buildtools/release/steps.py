"""A task as an ordered list of small steps over one plan.

Each :class:`Step` has a name, a ``skip`` that reads only the plan (the reason it does not run
for this build, or None), and a ``run`` that does its part of the work with the plan, what the
steps before it returned and the task's :class:`Session`. :func:`run` runs the steps in order
and collects each one's :class:`Outcome`, a value; nothing a step returns is changed later.
:func:`listing` is what ``--dry-run`` shows of them. The plan is made once, before the first
step, and read by all (:mod:`buildtools.release.prepare`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    import docker

    from buildtools.engine.build_spec import BuildReporter
    from buildtools.release.progress import PushReporter

P = TypeVar("P")


@dataclass
class Session:
    """What steps do their work with, besides the plan: where their lines go, the progress
    displays this task shows, and the engine, connected when a step first needs it (a
    promotion never does)."""

    say: Callable[[str], None]
    push_reporter: PushReporter
    warn: Callable[[str], None] = field(default=lambda line: None)
    # The build progress display: none for --json and --quiet, every line with --verbose.
    build_display: bool = True
    verbose: bool = False
    engine: docker.DockerClient | None = field(default=None, repr=False)

    def client(self) -> docker.DockerClient:
        if self.engine is None:
            from buildtools.engine import connect

            self.engine = connect.connect()
        return self.engine

    @contextlib.contextmanager
    def build_progress(self) -> Iterator[BuildReporter | None]:
        """The build display for one build step, closed when the step ends."""
        if not self.build_display:
            yield None
            return
        from buildtools.release.progress import BuildProgress

        display = BuildProgress(verbose=self.verbose)
        try:
            yield display
        finally:
            display.close()


@dataclass(frozen=True)
class Outcome:
    """One step's outcome: what its ``run`` returned, or why it was skipped."""

    step: str
    value: Any = None
    skipped: str | None = None


class Outcomes(Mapping[str, Any]):
    """The values of the steps that ran so far, by step name (read-only); a skipped step's
    value is None."""

    def __init__(self, done: Sequence[Outcome]) -> None:
        self.done = tuple(done)
        self._values = {o.step: o.value for o in self.done}

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def skipped(self, name: str) -> str | None:
        return next((o.skipped for o in self.done if o.step == name), None)


def never(plan: Any) -> None:
    """No reason: the step always runs (or, as ``loud``, its skip is only recorded)."""
    return None


@dataclass(frozen=True)
class Step(Generic[P]):
    """A named piece of a task. ``skip(plan)`` says why it does not run for this plan (None: it
    runs); ``run(plan, done, session)`` does the work and returns its outcome's value.
    ``loud(plan)``: whether a skip is said, not only recorded (a skipped smoke test must be
    seen)."""

    name: str
    run: Callable[[P, Outcomes, Session], Any]
    skip: Callable[[P], str | None] = never
    loud: Callable[[P], object] = never


def run(steps: Sequence[Step[P]], plan: P, session: Session, prefix: str = "") -> Outcomes:
    """Run ``steps`` in order over ``plan``; each one's outcome, collected as it ends."""
    done: list[Outcome] = []
    for step in steps:
        reason = step.skip(plan)
        if reason is not None:
            if step.loud(plan):
                session.say(f"{prefix}{reason}")
            done.append(Outcome(step.name, skipped=reason))
            continue
        done.append(Outcome(step.name, step.run(plan, Outcomes(done), session)))
    return Outcomes(done)


def listing(steps: Sequence[Step[P]], plan: P) -> list[str]:
    """The steps as they would go for ``plan``: one line each, those that run and those
    skipped with the reason."""
    lines = []
    for step in steps:
        reason = step.skip(plan)
        lines.append(f"  skip  {step.name}: {reason}" if reason else f"  run   {step.name}")
    return lines
