from __future__ import annotations

import os

# A Lambda environment would make restate.app() return a Lambda handler instead of an ASGI app.
os.environ.pop("AWS_LAMBDA_FUNCTION_NAME", None)
