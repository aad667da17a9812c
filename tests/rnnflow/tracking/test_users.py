"""A class's names on a server with users: the per-user experiment, model and study names, and the
teacher's class list. (The server itself: tests/flows/test_course_server.py.)"""

import pytest

from rnnflow.tracking.store import experiment_name, model_name, tracking_user
from rnnflow.tracking.users import parse_users


@pytest.fixture
def on_server(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")


def test_a_users_names_carry_their_prefix_on_a_server(on_server):
    assert tracking_user() == "alice"
    assert experiment_name("quick") == "alice/quick"
    assert experiment_name("bob/quick") == "bob/quick"  # another's, to read, as written
    assert model_name("quick") == "alice.quick"
    assert model_name("alice.quick") == "alice.quick"
    assert model_name("bob.quick") == "alice.bob.quick"  # what alice registers is hers


@pytest.mark.parametrize("uri, user", [("http://127.0.0.1:5000", None),
                                       ("sqlite:////tmp/mlflow.db", "alice")])
def test_no_prefix_without_a_user_or_without_a_server(monkeypatch, uri, user):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    if user is None:
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    assert tracking_user() is None
    assert experiment_name("quick") == "quick" and model_name("quick") == "quick"


def test_a_class_list_gives_names_and_optional_passwords():
    text = "# the class\nalice\n\nbob  bob-password-1\ncarol,carol-password-1  # late\n"
    assert parse_users(text) == [("alice", None), ("bob", "bob-password-1"),
                                 ("carol", "carol-password-1")]


@pytest.mark.parametrize("text, message", [
    ("alice\nal/ice\n", "line 2: 'al/ice'"),
    ("alice pw extra\n", "line 1"),
    ("alice\nalice\n", "line 2: alice is listed twice"),
    ("# nobody\n\n", "names no user"),
])
def test_a_bad_class_list_names_its_line(text, message):
    with pytest.raises(ValueError, match=message):
        parse_users(text)


class _AuthApp:
    """The authentication app's client as the teacher's `rnnflow users` meets it: the users it
    has; `admin` False answers every call 403, as the server answers a student."""

    def __init__(self, users, admin=True):
        self.users, self.admin = dict(users), admin

    def _check(self):
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import PERMISSION_DENIED

        if not self.admin:
            raise MlflowException("Permission denied", error_code=PERMISSION_DENIED)

    def get_user(self, name):
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

        self._check()
        if name not in self.users:
            raise MlflowException(f"no user {name}", error_code=RESOURCE_DOES_NOT_EXIST)
        return name

    def create_user(self, name, password):
        self._check()
        self.users[name] = password


@pytest.fixture
def auth_app(on_server, monkeypatch):
    import mlflow.server

    from rnnflow.tracking import users

    app = _AuthApp({"alice": "alices-own-password"})
    monkeypatch.setattr(users, "check_server", lambda uri: None)
    monkeypatch.setattr(mlflow.server, "get_app_client", lambda name, tracking_uri: app)
    return app


def test_the_class_list_creates_the_users_the_server_lacks(auth_app):
    from rnnflow.tracking.users import User, create_users

    done = create_users([("alice", "ignored"), ("bob", "bob-password-1"), ("carol", None)])
    assert done[:2] == [User("alice", None, False), User("bob", "bob-password-1", True)]
    assert done[2].name == "carol" and done[2].created and done[2].password
    assert auth_app.users == {"alice": "alices-own-password", "bob": "bob-password-1",
                              "carol": done[2].password}


def test_only_the_admin_may_create_users(auth_app):
    from rnnflow.tracking import TrackingError
    from rnnflow.tracking.users import create_users

    auth_app.admin = False
    with pytest.raises(TrackingError, match="only the server's admin may create users"):
        create_users([("bob", None)])
    assert set(auth_app.users) == {"alice"}
