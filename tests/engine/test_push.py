"""How a push through the engine is judged: which errors are retried, and reading its stream
(pure: the messages are the engine's own, recorded from real faults)."""

from __future__ import annotations

import pytest

from buildtools.engine import push


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        # Messages the Docker Engine 20.10 really reported in these tests' faults:
        ("received unexpected HTTP status: 503 Service Unavailable", "transient"),
        ("received unexpected HTTP status: 502 Bad Gateway", "transient"),
        (
            "error parsing HTTP 429 response body: invalid character 'S' looking for beginning",
            "transient",
        ),
        (
            'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused',
            "transient",
        ),
        ("unauthorized: authentication required", "auth"),
        ("no basic auth credentials", "auth"),
        ("manifest invalid: manifest invalid", "permanent"),
        # Docker Hub's wording for these:
        ("denied: requested access to the resource is denied", "permanent"),
        ("toomanyrequests: You have reached your pull rate limit.", "transient"),
        ("net/http: TLS handshake timeout", "transient"),
        ("read tcp 10.0.0.2:40112->1.2.3.4:443: read: connection reset by peer", "transient"),
        ("something nobody has seen before", "permanent"),
    ],
)
def test_push_errors_are_classified(message: str, kind: str) -> None:
    assert push.classify(message) == kind


def test_push_stream_errors_are_raised_even_inside_a_successful_response() -> None:
    lines = [
        {"status": "The push refers to repository [r/app]"},
        {"status": "Preparing", "progressDetail": {}, "id": "abc"},
        {"errorDetail": {"message": "denied: no"}, "error": "denied: no"},
    ]
    with pytest.raises(push.PushFailed, match="denied: no"):
        push.read_push_stream(lines)
    with pytest.raises(push.PushFailed, match="without reporting a digest"):
        push.read_push_stream(lines[:2])
    digest = "sha256:" + "a" * 64
    done = [*lines[:2], {"progressDetail": {}, "aux": {"Tag": "1", "Digest": digest, "Size": 5}}]
    assert push.read_push_stream(done) == digest
