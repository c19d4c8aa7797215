"""Ray token authentication for the clusters the command line starts and reads.

Ray 2.60 turns token authentication on for a new head node whenever a token exists
(``~/.ray/auth_token``, ``$RAY_AUTH_TOKEN_PATH`` or ``$RAY_AUTH_TOKEN``), but a node joining with
``ray start --address`` only sends the token when ``RAY_AUTH_MODE=token`` is set. The command line
therefore sets the mode explicitly for every process it starts and for its own GCS reads.
``RAY_AUTH_MODE`` set by the user always wins (``RAY_AUTH_MODE=disabled`` opts out).
"""

from __future__ import annotations

import os

from yuanrong._private import auth

AUTH_MODE_ENV = "RAY_AUTH_MODE"


def token_available() -> bool:
    """True when Ray would find an authentication token on this machine."""
    from ray._raylet import AuthenticationTokenLoader

    return bool(AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True))


def auth_env_for_new_cluster() -> dict[str, str]:
    """Environment for the nodes of a new local cluster: token auth on, a token created if missing.

    This is what ``ray.init()`` does for a new local cluster in Ray 2.60 (secure by default).
    """
    # The token file also signs yuanrong's tenant tokens, so it exists even with Ray's auth disabled;
    # created 0600 here (Ray's own generator writes it 0644).
    had_token = token_available()
    auth.ensure_token_file()
    if not had_token:
        from ray._raylet import AuthenticationTokenLoader

        AuthenticationTokenLoader.instance().reset_cache()
    mode = os.environ.get(AUTH_MODE_ENV)
    if mode is not None:
        return {AUTH_MODE_ENV: mode}
    return {AUTH_MODE_ENV: "token"}


def use_token_if_available() -> None:
    """Send the token on this process's connections to Ray when one is available and no mode is set."""
    auth.tighten(auth.token_path())
    if os.environ.get(AUTH_MODE_ENV) is None and token_available():
        os.environ[AUTH_MODE_ENV] = "token"
        from ray._raylet import Config

        Config.initialize("")
