"""Wire layer: frames, V7 messages, discovery and the in-process ASGI driver of one attempt."""
