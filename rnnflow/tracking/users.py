"""A class's users on a tracking server run with MLflow's authentication app
(`mlflow server --app-name basic-auth`), created by the teacher, who is its admin.

What each user may do needs no grant here: the server's `default_permission = READ` lets every
user read every experiment, and MLflow gives the user who creates an experiment or a
registered model the MANAGE permission on it, so each student writes only into their own
(rnnflow names them `<user>/<name>`: store.experiment_name).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from mlflow.exceptions import MlflowException

from rnnflow.tracking.store import (
    TrackingError,
    check_server,
    credentials_refused,
    refusal,
    tracking_uri,
)

# A name rnnflow can put in front of an experiment's (`alice/quick`) and a model's
# (`alice.quick`): no `/`, `:` (MLflow refuses them in model names) or spaces.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")


@dataclass(frozen=True)
class User:
    name: str
    password: str | None  # None: the user was there already, and keeps their password
    created: bool


def parse_users(text: str) -> list[tuple[str, str | None]]:
    """(name, password or None) per line of a class list: `name` or `name password` (a space,
    tab or comma between), blank lines and `#` comments skipped. A bad name or a name given
    twice is an error naming its line."""
    entries, seen = [], set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f for f in re.split(r"[\s,]+", line) if f]
        if len(fields) > 2 or not _NAME.match(fields[0]):
            raise ValueError(f"line {number}: {raw.strip()!r}: expected a user name (letters, "
                             "digits, _ . @ -), optionally followed by a password")
        if fields[0] in seen:
            raise ValueError(f"line {number}: {fields[0]} is listed twice")
        seen.add(fields[0])
        entries.append((fields[0], fields[1] if len(fields) == 2 else None))
    if not entries:
        raise ValueError("the list names no user")
    return entries


def create_users(entries: list[tuple[str, str | None]]) -> list[User]:
    """Create each user the server does not have yet, with the given password or a new random
    one; a user it has is left as it is (so the list can be run again once students join). Run
    as the server's admin (MLFLOW_TRACKING_USERNAME/PASSWORD)."""
    uri = tracking_uri()
    if not uri.startswith(("http://", "https://")):
        raise TrackingError(f"users live on a tracking server (MLFLOW_TRACKING_URI=http://...), "
                            f"not in {uri}")
    check_server(uri)
    from mlflow.server import get_app_client

    client = get_app_client("basic-auth", tracking_uri=uri)
    done = []
    for name, password in entries:
        try:
            if _has_user(client, name):
                done.append(User(name, None, False))
                continue
            password = password or secrets.token_urlsafe(12)
            client.create_user(name, password)
        except MlflowException as exc:
            code = refusal(exc)
            if code == 401:
                raise credentials_refused(uri) from exc
            if code == 403:
                raise TrackingError(f"{uri}: only the server's admin may create users "
                                    "(MLFLOW_TRACKING_USERNAME is not an admin)") from exc
            raise TrackingError(f"user {name}: {exc.message}") from exc
        done.append(User(name, password, True))
    return done


def _has_user(client, name: str) -> bool:
    """Whether the server has user `name`. A refusal (401, 403) is raised: it is about the
    caller, not the user. Any other error reads as no such user, and creating it then says
    what is wrong."""
    try:
        client.get_user(name)
    except MlflowException as exc:
        if refusal(exc) is not None:
            raise
        return False
    return True
