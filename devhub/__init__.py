"""devhub: a local GitHub for tests and the demo. The app never imports it."""

from devhub.hub import DevHub

__all__ = ["DevHub"]
