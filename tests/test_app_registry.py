"""Every event a handler listens for is one the manifest subscribes to; the labels are sane."""

import re
from pathlib import Path

from ruamel.yaml import YAML

from app.labels import CODER_LABELS, MAX_DESCRIPTION
from app.server import registered_events

MANIFEST = Path(__file__).parent.parent / "app.yml"
# GitHub always delivers these to an app and rejects them in a manifest's default_events.
ALWAYS_DELIVERED = {"installation", "installation_repositories"}


def manifest_events():
    manifest = YAML(typ="safe").load(MANIFEST.read_text())
    return set(manifest["default_events"])


def test_every_registered_event_is_subscribed_in_app_yml():
    missing = registered_events() - manifest_events() - ALWAYS_DELIVERED
    assert not missing, f"handlers for events app.yml does not subscribe to: {sorted(missing)}"


def test_the_installation_handler_is_registered():
    assert {"installation", "installation_repositories"} <= registered_events()


def test_labels_are_valid_for_github():
    names = [label.name for label in CODER_LABELS]
    assert len(names) == len(set(names)) == 8
    for label in CODER_LABELS:
        assert label.name.startswith("coder:")
        assert re.fullmatch(r"[0-9a-f]{6}", label.color), label
        assert 0 < len(label.description) <= MAX_DESCRIPTION, label
