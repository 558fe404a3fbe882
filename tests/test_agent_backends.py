"""Agent backends as processes: their environment, the limits that stop them, their events."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
from pathlib import Path

import pytest

from actions.agent.backends import (
    AgentSession,
    ClaudeBackend,
    CommandBackend,
    Cost,
    Finished,
    Limits,
    Output,
    ScriptBackend,
    Status,
    StopReason,
    Stuck,
)
from actions.agent.clock import ManualClock, RealClock

FIXTURES = Path(__file__).parent / "fixtures" / "agent"
SECRETS = {
    "GITHUB_TOKEN": "ghs_should_never_reach_an_agent_000000",
    "CODER_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token-secret",
    "ANTHROPIC_API_KEY": "sk-ant-only-for-claude",
}


def session(tmp_path, clock=None, limits=None, environ=None, role="implementer"):
    workspace = tmp_path / "workspace"
    workspace.mkdir(exist_ok=True)
    briefing = tmp_path / "briefing.md"
    briefing.write_text("# coder briefing\n\nDo the thing.\n")
    return AgentSession(
        role=role,
        model="sonnet",
        run_id="abcdefghijkl",
        workspace=workspace,
        briefing_file=briefing,
        clock=clock or RealClock(),
        limits=limits or Limits(),
        runner_environ={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            **SECRETS,
            **(environ or {}),
        },
    )


async def collect(backend, agent_session):
    return [event async for event in backend.run(agent_session)]


async def test_the_command_backend_speaks_the_protocol(tmp_path):
    command = "echo 'STATUS: reading'; echo hello; echo 'COST: 0.25 1000'; echo oops >&2; exit 3"
    events = await collect(CommandBackend(command), session(tmp_path))
    # stdout keeps its order; stderr arrives on its own pipe, so only its content is certain.
    stdout = [e for e in events[:-1] if not (isinstance(e, Output) and e.stream == "stderr")]
    assert stdout == [Status("reading"), Output("hello"), Cost(0.25, 1000)]
    assert Output("oops", "stderr") in events
    assert events[-1] == Finished(3)
    assert not events[-1].ok


async def test_an_agent_gets_no_secret_and_nothing_but_its_contract(tmp_path):
    agent_session = session(tmp_path)
    dump = tmp_path / "env.json"
    python = shlex.quote(sys.executable)
    command = f"{python} -c 'import json, os; print(json.dumps(dict(os.environ)))' > {dump}"
    events = await collect(CommandBackend(command), agent_session)
    assert events[-1] == Finished(0)
    env = json.loads(dump.read_text())
    for added_by_bash in ("PWD", "SHLVL", "_"):
        env.pop(added_by_bash, None)
    assert env == {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "CODER_BRIEFING_FILE": str(agent_session.briefing_file),
        "CODER_ROLE": "implementer",
        "CODER_MODEL": "sonnet",
        "CODER_RUN_ID": "abcdefghijkl",
        "CODER_WORKSPACE": str(agent_session.workspace),
    }
    for secret in SECRETS.values():
        assert secret not in dump.read_text()


async def test_the_agent_runs_in_the_workspace(tmp_path):
    agent_session = session(tmp_path)
    events = await collect(CommandBackend('echo "STATUS: $(pwd)"'), agent_session)
    assert Status(str(agent_session.workspace)) in events


async def test_the_script_backend_runs_python_with_the_same_contract(tmp_path):
    script = tmp_path / "agent.py"
    script.write_text(
        "import os, pathlib\n"
        "pathlib.Path('made-by-script.txt').write_text(os.environ['CODER_ROLE'])\n"
        "print('STATUS: wrote a file')\n"
        "print('STUCK: is this enough?')\n"
    )
    agent_session = session(tmp_path, role="tester")
    events = await collect(ScriptBackend(script), agent_session)
    assert events == [Status("wrote a file"), Stuck("is this enough?"), Finished(0)]
    assert (agent_session.workspace / "made-by-script.txt").read_text() == "tester"


async def test_a_stand_in_claude_gets_the_briefing_model_and_its_key_only(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "claude-call.json"
    fake = bin_dir / "claude"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"call = {{'argv': sys.argv[1:], 'env': dict(os.environ)}}\n"
        f"open({str(record)!r}, 'w').write(json.dumps(call))\n"
        f"sys.stdout.write(open({str(FIXTURES / 'claude-success.jsonl')!r}).read())\n"
    )
    fake.chmod(0o755)
    agent_session = session(tmp_path, environ={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    events = await collect(ClaudeBackend(), agent_session)
    assert events[-1] == Finished(0)
    assert Cost(0.0873213, 70704) in events
    call = json.loads(record.read_text())
    assert call["argv"][:2] == ["-p", "# coder briefing\n\nDo the thing.\n"]
    assert call["argv"][2:] == [
        "--output-format",
        "stream-json",
        "--verbose",
        "--model",
        "sonnet",
        "--permission-mode",
        "acceptEdits",
    ]
    assert call["env"]["ANTHROPIC_API_KEY"] == SECRETS["ANTHROPIC_API_KEY"]
    for name in ("GITHUB_TOKEN", "CODER_PRIVATE_KEY", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"):
        assert name not in call["env"]


async def test_a_claude_error_result_fails_the_session(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "claude"
    fixture = FIXTURES / "claude-max-turns.jsonl"
    fake.write_text(f"#!/bin/sh\ncat {shlex.quote(str(fixture))}\n")
    fake.chmod(0o755)
    agent_session = session(tmp_path, environ={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    events = await collect(ClaudeBackend(), agent_session)
    assert events[-1] == Finished(0, None, "claude reported an error (error_max_turns)")
    assert not events[-1].ok


async def test_a_missing_claude_cli_is_a_clear_failure(tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    events = await collect(ClaudeBackend(), session(tmp_path, environ={"PATH": str(empty)}))
    assert events == [Finished(None, None, "claude CLI not found on PATH")]


async def run_until_killed(tmp_path, clock, limits, advance, command="echo started; sleep 1000"):
    """Start a hanging agent, move the manual clock once it is running, return its events."""
    agent_session = session(tmp_path, clock=clock, limits=limits)
    started = asyncio.Event()
    events = []

    async def consume():
        async for event in CommandBackend(command).run(agent_session):
            events.append(event)
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    await clock.wait_for_sleepers(1)
    await clock.advance(advance)
    await task
    return events


async def test_an_idle_agent_is_stopped(tmp_path):
    clock = ManualClock()
    limits = Limits(deadline=clock.now() + 3600, idle_seconds=600, grace_seconds=5)
    events = await run_until_killed(tmp_path, clock, limits, advance=601)
    assert events[0] == Output("started")
    assert events[-1] == Finished(-15, StopReason.IDLE)


async def test_an_agent_past_the_run_deadline_is_stopped(tmp_path):
    clock = ManualClock()
    limits = Limits(deadline=clock.now() + 60, idle_seconds=600, grace_seconds=5)
    events = await run_until_killed(tmp_path, clock, limits, advance=61)
    assert events[-1] == Finished(-15, StopReason.RUN_LIMIT)


async def test_a_short_advance_stops_nothing(tmp_path):
    clock = ManualClock()
    limits = Limits(deadline=clock.now() + 60, idle_seconds=600, grace_seconds=5)
    agent_session = session(tmp_path, clock=clock, limits=limits)
    gate = tmp_path / "gate"
    command = f"echo started; while [ ! -e {gate} ]; do sleep 0.01; done; echo done"
    events = []
    started = asyncio.Event()

    async def consume():
        async for event in CommandBackend(command).run(agent_session):
            events.append(event)
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    await clock.wait_for_sleepers(1)
    await clock.advance(59)
    gate.touch()
    await task
    assert events == [Output("started"), Output("done"), Finished(0)]


async def test_an_agent_that_ignores_sigterm_is_killed(tmp_path):
    clock = ManualClock()
    limits = Limits(idle_seconds=10, grace_seconds=0.2)
    command = "trap '' TERM; echo started; while true; do sleep 0.05; done"
    events = await run_until_killed(tmp_path, clock, limits, advance=11, command=command)
    assert events[-1] == Finished(-9, StopReason.IDLE)


async def test_idle_limits_work_on_the_real_clock_too(tmp_path):
    limits = Limits(idle_seconds=0.2, grace_seconds=5)
    events = await collect(CommandBackend("sleep 30"), session(tmp_path, limits=limits))
    assert events == [Finished(-15, StopReason.IDLE)]


async def test_a_stop_request_ends_the_session(tmp_path):
    agent_session = session(tmp_path)
    events = []
    async for event in CommandBackend("echo 'STUCK: help?'; sleep 1000").run(agent_session):
        events.append(event)
        if isinstance(event, Stuck):
            agent_session.request_stop()
    assert events == [Stuck("help?"), Finished(-15, StopReason.REQUESTED)]


async def test_leftover_background_processes_die_with_the_session(tmp_path):
    pid_file = tmp_path / "pid"
    command = f"sleep 1000 & echo $! > {shlex.quote(str(pid_file))}; echo 'STATUS: left a child'"
    events = await collect(CommandBackend(command), session(tmp_path))
    assert events == [Status("left a child"), Finished(0)]
    assert await exited(int(pid_file.read_text()))


async def test_a_missing_program_is_a_failure_not_a_crash(tmp_path):
    script = tmp_path / "does-not-exist.py"
    events = await collect(ScriptBackend(script), session(tmp_path))
    assert events[-1].exit_code == 2  # python: can't open file
    assert not events[-1].ok


@pytest.mark.parametrize("length", [10, 70_000, 2_500_000])
async def test_long_lines_arrive_whole_or_in_bounded_pieces(tmp_path, length):
    command = f"{shlex.quote(sys.executable)} -c \"print('x' * {length})\""
    events = await collect(CommandBackend(command), session(tmp_path))
    outputs = [event.line for event in events if isinstance(event, Output)]
    assert "".join(outputs) == "x" * length
    assert all(len(line) <= 1024 * 1024 for line in outputs)


async def exited(pid, timeout=5.0):
    """Wait until process `pid` has terminated (a zombie counts); False if it never does."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(fd, lambda: done.done() or done.set_result(True))
    try:
        return await asyncio.wait_for(done, timeout)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def test_the_artifact_file_reaches_the_agent_and_claude_may_write_its_directory(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "claude-call.json"
    fake = bin_dir / "claude"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "call = {'argv': sys.argv[1:], 'env': dict(os.environ)}\n"
        f"open({str(record)!r}, 'w').write(json.dumps(call))\n"
        f"sys.stdout.write(open({str(FIXTURES / 'claude-success.jsonl')!r}).read())\n"
    )
    fake.chmod(0o755)
    agent_session = session(tmp_path, environ={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    step_dir = tmp_path / "scratch" / "step-1-implementer"
    step_dir.mkdir(parents=True)
    agent_session.artifact_file = step_dir / "artifact.json"
    assert (await collect(ClaudeBackend(), agent_session))[-1] == Finished(0)
    call = json.loads(record.read_text())
    assert call["argv"][-2:] == ["--add-dir", str(step_dir)]
    assert call["env"]["CODER_ARTIFACT_FILE"] == str(step_dir / "artifact.json")
    assert "CODER_ARTIFACT_FILE" not in session(tmp_path).agent_env()
