"""Provide each real part by hand, from the repository root: ``python -m testbed
engine|bases [REPOSITORY]|services|registry|fresh [--remote] [BASES_REPOSITORY]``
(``--remote``: an engine in a network namespace of its own, reachable only over TCP, as
GitLab's docker:dind is for a job)."""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from pathlib import Path

from buildtools.engine.bases import ensure_base_image
from buildtools.errors import BuildToolsError
from testbed.engines import ensure_engine
from testbed.fresh import FreshEngine
from testbed.registry import LocalRegistry
from testbed.services import ensure_service_image


def stop_on_signals() -> dict[signal.Signals, object]:
    """SIGINT and SIGTERM as KeyboardInterrupt, so what was started is stopped: SIGINT even
    when started in the background (``&``), where a shell has it ignored; SIGTERM, which by
    default ends Python at once. The previous handlers, to put back."""
    stops = (signal.SIGINT, signal.SIGTERM)
    return {sig: signal.signal(sig, signal.default_int_handler) for sig in stops}


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "bases"
    try:
        # The registry is a plain process: it needs no engine (nor starts one).
        client = ensure_engine() if what != "registry" else None
        if what == "engine":
            print(f"Docker Engine {client.version()['Version']} answers")
        elif what == "bases":
            print(ensure_base_image(client, argv[1] if len(argv) > 1 else "lara-buildtools/debian"))
        elif what == "services":
            base = ensure_base_image(client, "lara-buildtools/debian")
            for name in ("mariadb", "node"):  # the example's database; the LARA fixture's front end
                print(ensure_service_image(client, name, base))
        elif what == "fresh":
            remote = "--remote" in argv[1:]
            rest = [arg for arg in argv[1:] if arg != "--remote"]
            base = ensure_base_image(client, rest[0] if rest else "lara-buildtools/debian")
            # SIGTERM too must clean up: bridge, iptables rules and files outlive the process.
            previous = stop_on_signals()
            try:
                with FreshEngine(remote=remote) as engine:
                    engine.load(base, source=client)
                    print(f"a fresh engine with only {base}; Ctrl-C stops it", file=sys.stderr)
                    print(f"DOCKER_HOST={engine.host}", flush=True)
                    if engine.process:
                        engine.process.wait()
            except KeyboardInterrupt:
                print("fresh engine stopped and removed", file=sys.stderr)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        elif what == "registry":
            # Ctrl-C or SIGTERM stops the docker-registry process too, which would outlive us.
            previous = stop_on_signals()
            reg = LocalRegistry(Path(tempfile.mkdtemp(prefix="lara-registry-"))).start()
            try:
                # Inside the try: a signal right after the lines are read (a script that reads
                # them, then stops us) must still stop the registry, not kill us around it.
                secret = reg.root / "password"
                secret.touch(mode=0o600)
                secret.write_text(reg.password)
                print(f"registry on {reg.url}, user {reg.username}; Ctrl-C stops it", flush=True)
                print(f"password in {secret} (mode 600)", flush=True)
                reg.process.wait()
            except KeyboardInterrupt:
                reg.stop()
                print("registry stopped and its folder removed", file=sys.stderr)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
                shutil.rmtree(reg.root, ignore_errors=True)  # the password file goes with it
        else:
            print(
                "usage: python -m testbed engine|bases [REPOSITORY]|services|registry"
                "|fresh [--remote] [BASES_REPOSITORY]"
            )
            return 2
    except BuildToolsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
