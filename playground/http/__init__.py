"""Restate's own HTTP surface over the embedded runtime: the ingress (calls, sends, attach/output,
awakeables) and the admin API (services, deployments, invocation operations, SQL), so that curl, Restate's
client libraries and the real `restate` CLI work against a notebook's runtime. Start it with
`door = await rt.serve_http()`; see docs/http.md."""

from .server import Door, DoorStarter

__all__ = ["Door", "DoorStarter"]
