"""Installing the app creates coder's labels, once, however often GitHub redelivers."""

from app.installation import ensure_labels
from app.labels import CODER_LABELS
from app.settings import load_settings
from tests.support.app import serve_app

WANTED = {label.name: label for label in CODER_LABELS}


def label_writes(requests, repo="acme/widgets"):
    return [
        r
        for r in requests
        if r["method"] in {"POST", "PATCH"} and r["path"].startswith(f"/api/v3/repos/{repo}/labels")
    ]


async def labels_of(admin, token, repo="acme/widgets"):
    status, _, labels = await admin.rest(token).get(f"/repos/{repo}/labels?per_page=100")
    assert status == 200
    return {label["name"]: label for label in labels}


async def install_and_wait(devhub, app_server, admin, alice):
    await admin.create_org("acme", "alice")
    await admin.create_repo("acme", "widgets", alice.token)
    await admin.install("acme", "all")
    delivery = await devhub.wait_for_delivery(event="installation", action="created")
    assert delivery.status_code == 202
    assert await app_server.queue.wait_for(delivery.guid) == "ok"
    return delivery


async def test_installation_creates_every_label(devhub, app_server, admin):
    alice = await admin.create_user("alice")
    await install_and_wait(devhub, app_server, admin, alice)
    labels = await labels_of(admin, alice.token)
    for name, wanted in WANTED.items():
        assert labels[name]["color"] == wanted.color
        assert labels[name]["description"] == wanted.description
    writes = label_writes(await admin.requests())
    assert len(writes) == len(CODER_LABELS)
    assert all(w["token_owner"] == "coder[bot]" for w in writes)


async def test_a_redelivery_has_no_second_effect(devhub, app_server, admin):
    alice = await admin.create_user("alice")
    delivery = await install_and_wait(devhub, app_server, admin, alice)
    before = len(label_writes(await admin.requests()))
    again = await admin.redeliver(delivery.id)
    assert again["status_code"] == 200
    assert len(label_writes(await admin.requests())) == before


async def test_a_redelivery_to_a_fresh_replica_writes_nothing(devhub, app_server, admin):
    # Another replica has an empty dedupe cache: the handler itself must be idempotent.
    alice = await admin.create_user("alice")
    delivery = await install_and_wait(devhub, app_server, admin, alice)
    before = len(label_writes(await admin.requests()))
    replica = await serve_app(load_settings(None, devhub.app_env()))
    try:
        devhub.webhook_url = replica.webhook_url
        again = await admin.redeliver(delivery.id)
        assert again["status_code"] == 202
        assert await replica.queue.wait_for(delivery.guid) == "ok"
    finally:
        await replica.close()
    assert len(label_writes(await admin.requests())) == before
    assert len(await labels_of(admin, alice.token)) >= len(CODER_LABELS)


async def test_labels_that_drifted_are_corrected_and_others_kept(devhub, app_server, admin):
    alice = await admin.create_user("alice")
    await admin.create_repo("alice", "widgets", alice.token)
    rest = admin.rest(alice.token)
    status, _, _ = await rest.post(
        "/repos/alice/widgets/labels",
        {"name": "Coder:Develop", "color": "000000", "description": "mine"},
    )
    assert status == 201
    status, _, _ = await rest.post(
        "/repos/alice/widgets/labels", {"name": "bug", "color": "d73a4a"}
    )
    assert status == 201
    installation_id = await admin.install("alice", "all")
    delivery = await devhub.wait_for_delivery(event="installation", action="created")
    assert await app_server.queue.wait_for(delivery.guid) == "ok"
    labels = await labels_of(admin, alice.token, "alice/widgets")
    # GitHub label names are case-insensitive: the existing one is corrected, not duplicated.
    develop = [name for name in labels if name.casefold() == "coder:develop"]
    assert len(develop) == 1
    assert labels[develop[0]]["color"] == WANTED["coder:develop"].color
    assert labels["bug"]["color"] == "d73a4a"
    gh = app_server.access.for_installation(installation_id)
    assert await ensure_labels(gh, "alice/widgets") == []


async def test_repositories_added_later_get_labels(devhub, app_server, admin):
    alice = await admin.create_user("alice")
    await admin.create_org("acme", "alice")
    await admin.create_repo("acme", "widgets", alice.token)
    await admin.install("acme", ["widgets"])
    created = await devhub.wait_for_delivery(event="installation", action="created")
    assert await app_server.queue.wait_for(created.guid) == "ok"
    await admin.create_repo("acme", "gadgets", alice.token)
    # Adding a repository to a selected installation is done on GitHub's settings page; the
    # admin API installs again with the longer list, as that page does.
    await admin.install("acme", ["widgets", "gadgets"])
    added = await devhub.wait_for_delivery(event="installation_repositories", action="added")
    assert await app_server.queue.wait_for(added.guid) == "ok"
    assert set(WANTED) <= set(await labels_of(admin, alice.token, "acme/gadgets"))


async def test_a_failed_label_post_is_looked_up_before_it_is_sent_again(devhub, app_server, admin):
    alice = await admin.create_user("alice")
    await admin.add_fault(kind="status", status=502, method="POST", path="/labels$", times=1)
    await install_and_wait(devhub, app_server, admin, alice)
    requests = await admin.requests()
    posts = [r for r in label_writes(requests) if r["method"] == "POST"]
    assert [r["status"] for r in posts].count(502) == 1
    assert len(posts) == len(CODER_LABELS) + 1
    # Between the 502 and the second POST, the app looked for the label by name.
    failed = next(i for i, r in enumerate(requests) if r["status"] == 502)
    lookup = requests[failed + 1]
    assert lookup["method"] == "GET"
    assert lookup["path"].startswith("/api/v3/repos/acme/widgets/labels/")
    assert lookup["status"] == 404
    assert set(WANTED) <= set(await labels_of(admin, alice.token))
