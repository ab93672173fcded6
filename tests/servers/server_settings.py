"""Settings of the server processes tests/foundation/test_servers.py starts: the demo's, with
one more view (``tests.server_urls``)."""

from demo.settings import *  # noqa: F403

ROOT_URLCONF = "tests.server_urls"
