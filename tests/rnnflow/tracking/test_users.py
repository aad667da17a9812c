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
