"""Real parts for this repository's tests and benchmarks: Docker Engines, a htpasswd registry,
the example's service images. Not installed with the package (setup.cfg installs only
``buildtools``): an app that adopts lara-buildtools gets ``invoke bases`` and nothing of this.

Run from the repository root (``python -m testbed engine|bases|services|registry|fresh``), or
import it where the root is on ``sys.path`` (pytest's rootdir, invoke's tasks directory).
"""

from buildtools.engine.bases import ensure_base_image
from buildtools.engine.ports import free_port
from testbed.cosign import cosign_path
from testbed.engines import ensure_engine
from testbed.fresh import FreshEngine
from testbed.fresh_host import FRESH_PREFIX
from testbed.registry import LocalRegistry
from testbed.services import ensure_service_image

__all__ = [
    "FRESH_PREFIX",
    "FreshEngine",
    "LocalRegistry",
    "cosign_path",
    "ensure_base_image",
    "ensure_engine",
    "ensure_service_image",
    "free_port",
]
