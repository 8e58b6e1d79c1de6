"""invoke entry point: the tasks live in the library so app repos can reuse them."""

from buildtools.tasks import ns  # noqa: F401
