"""The runner's words on the conversation, against devhub: a run that cannot start still answers
the comment that asked for it, and a stuck run's question is posted once, by its marker."""

from __future__ import annotations

import pytest

from actions.agent.main import EXIT_RUN_FAILED
from app.prompt_text import QUESTION, Prompt, parse_prompt, render_prompt
from tests.test_agent_run import GOOD_AGENT, REPO, STUCK_AGENT, config, make_setup

ASKED = "Should the flag be --verbose or --debug?"


@pytest.fixture
async def setup(devhub, admin, org, tmp_path):
    return await make_setup(devhub, admin, org, tmp_path)


async def asking_comment(setup):
    """A comment of alice's that asks for a run (the app records it as the run's `asked_in`)."""
    status, _, issue = await setup.owner.post(f"/repos/{REPO}/issues", {"title": "Ask here"})
    assert status == 201, issue
    status, _, comment = await setup.owner.post(
        f"/repos/{REPO}/issues/{issue['number']}/comments", {"body": "/coder develop"}
    )
    assert status == 201, comment
    return comment


async def reactions(setup, comment):
    answer = await setup.get(f"/repos/{REPO}/issues/comments/{comment['id']}/reactions")
    return [reaction["content"] for reaction in answer]


@pytest.mark.parametrize(
    ("coder_yml", "workflow", "reason"),
    [
        ("agent: {backend: nope}\n", "develop", ".github/coder.yml on main is invalid"),
        (config(), "nosuch", ".github/coder.yml has no workflow 'nosuch'"),
    ],
)
async def test_a_run_that_cannot_start_answers_the_comment_that_asked(
    setup, coder_yml, workflow, reason
):
    await setup.put_file(".github/coder.yml", coder_yml)
    await setup.put_file("tools/agent.py", GOOD_AGENT)
    comment = await asking_comment(setup)
    run = await setup.run(workflow=workflow, asked_in=f"issue-comment:{comment['id']}")

    assert await run.execute() == EXIT_RUN_FAILED

    (check_run,) = await run.check_runs(run.initial_sha)
    assert check_run["conclusion"] == "failure"
    assert reason in check_run["output"]["summary"]
    assert await reactions(setup, comment) == ["confused"]


async def test_a_run_refused_before_its_snapshot_is_read_reacts_to_nothing(setup):
    await setup.put_file(".github/coder.yml", config())
    comment = await asking_comment(setup)
    run = await setup.run(asked_in=f"issue-comment:{comment['id']}")

    assert await run.execute(CODER_PULL="999") == EXIT_RUN_FAILED

    (check_run,) = await run.check_runs(run.initial_sha)
    assert check_run["conclusion"] == "failure"
    assert await reactions(setup, comment) == []


def prompt_of(run):
    return render_prompt(
        Prompt(
            prompt_id=run.snapshot.run_id,
            kind=QUESTION,
            check_run=run.check_run["id"],
            workflow="develop",
            resume_at="implementer",
            head_sha=run.initial_sha,
            model="sonnet",
            question=ASKED,
        )
    )


async def prompts_for(setup, run):
    comments = await setup.get(f"/repos/{REPO}/issues/{run.pull['number']}/comments")
    return [
        (comment["user"]["login"], comment["id"])
        for comment in comments
        if (prompt := parse_prompt(comment)) and prompt.prompt_id == run.snapshot.run_id
    ]


async def test_a_second_attempt_of_a_stuck_job_does_not_ask_twice(setup):
    await setup.put_file(".github/coder.yml", config())
    await setup.put_file("tools/agent.py", STUCK_AGENT)
    run = await setup.run()
    # An earlier attempt of this job asked already: the app's bot posted the run's prompt.
    app = await setup.app()
    status, _, earlier = await app.post(
        f"/repos/{REPO}/issues/{run.pull['number']}/comments", {"body": prompt_of(run)}
    )
    assert status == 201, earlier

    assert await run.execute() == EXIT_RUN_FAILED

    assert await prompts_for(setup, run) == [("coder[bot]", earlier["id"])]
    (check_run,) = await run.check_runs((await run.pull_now())["head"]["sha"])
    assert check_run["conclusion"] == "action_required"


async def test_a_look_alike_prompt_from_someone_else_does_not_silence_the_question(setup):
    await setup.put_file(".github/coder.yml", config())
    await setup.put_file("tools/agent.py", STUCK_AGENT)
    run = await setup.run()
    status, _, forged = await setup.owner.post(
        f"/repos/{REPO}/issues/{run.pull['number']}/comments", {"body": prompt_of(run)}
    )
    assert status == 201, forged

    assert await run.execute() == EXIT_RUN_FAILED

    found = await prompts_for(setup, run)
    assert [login for login, _id in found] == ["alice", "coder[bot]"]
