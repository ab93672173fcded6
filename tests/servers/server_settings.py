"""Settings of the server processes tests/servers/test_real_servers.py starts: the demo's, with
one more view (``tests.servers.urls``)."""

from demo.settings import *  # noqa: F403

ROOT_URLCONF = "tests.servers.urls"
