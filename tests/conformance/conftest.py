"""The conformance fixtures: `target` runs each scenario on the embedded runtime and on a real server."""

from conformance_targets import conformance_server, target  # noqa: F401 (fixtures)
