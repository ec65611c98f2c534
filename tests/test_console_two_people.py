"""Two `linli chat` processes on one database are two people (the console is a channel like any
other).

A resident and a grid worker try the product side by side: each terminal shows only its own
person's chat. The dispatch card, queued while the worker's console was not running, waits in
the outbox for it, shows up there when it starts, and is answered with a digit; the resident's
terminal never shows it, and gets the "accepted" notice.
"""

from __future__ import annotations

import asyncio
import codecs
import re
from pathlib import Path

import pytest

from tests.processes import linli_process, run_linli
from tests.test_run import clean_env

# Starting a process (imports, `linli init`'s migration check) can take a while on a busy machine.
START_PATIENCE = 60.0
# An answer, or a message another process queued (the console looks every second).
PATIENCE = 10.0


class Terminal:
    """What a person sees of one `linli chat` process, read as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.stdin = process.stdin
        self.stdout = process.stdout
        self.seen = ""
        # Where the next expectation starts looking: each answer is looked for after the last.
        self.mark = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    async def wait_for(self, pattern: re.Pattern[str], patience: float) -> re.Match[str]:
        try:
            async with asyncio.timeout(patience):
                while (found := pattern.search(self.seen, self.mark)) is None:
                    chunk = await self.stdout.read(4096)
                    if not chunk:
                        raise AssertionError(
                            f"output ended before {pattern.pattern!r}: {self.seen[self.mark :]!r}"
                        )
                    self.seen += self._decoder.decode(chunk)
        except TimeoutError:
            raise AssertionError(
                f"no {pattern.pattern!r} within {patience} s; after the last answer: "
                f"{self.seen[self.mark :]!r}"
            ) from None
        self.mark = found.end()
        return found

    async def expect(self, fragment: str, patience: float = PATIENCE) -> re.Match[str]:
        return await self.wait_for(re.compile(re.escape(fragment)), patience)

    async def type(self, line: str) -> None:
        self.stdin.write(f"{line}\n".encode())
        await self.stdin.drain()

    async def choose(self, label: str, patience: float = PATIENCE) -> None:
        """Answer the numbered list that offers `label` with its number, as a person would."""
        option = await self.wait_for(re.compile(rf"^  (\d+)\) {re.escape(label)}$", re.M), patience)
        await self.type(option.group(1))

    async def finish(self) -> str:
        """End the session (Ctrl-D) and return everything it showed."""
        self.stdin.close()
        rest, errors = await asyncio.wait_for(self.process.communicate(), PATIENCE)
        self.seen += self._decoder.decode(rest, final=True)
        assert self.process.returncode == 0, errors.decode()
        assert "Traceback" not in errors.decode(), errors.decode()
        return self.seen


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_card_waits_for_its_persons_console_and_is_answered_with_a_digit(
    db_url: str, tmp_path: Path
) -> None:
    env = clean_env(
        LINLI_DATABASE__URL=db_url,
        LINLI_REPORT__MEDIA_DIR=str(tmp_path / "media"),
        # Both people read English (the console sends no language of its own).
        LINLI_COMMUNITY__DEFAULT_LOCALE="en",
    )
    await run_linli(env, "init")
    invite = await run_linli(env, "invite", "--building", "Building 3")
    found = re.search(r"^code: (\w+)$", invite, re.M)
    assert found is not None, invite
    code = found.group(1)
    # bot.toml: Building 3 is in Grid 2, whose grid worker gets its "Something else" reports.
    await run_linli(
        env, "admin", "grant", "--role", "grid_worker", "--grid", "Grid 2", "--console", "wang"
    )

    async with linli_process("chat", "--as", "alice", env=env) as alice_process:
        alice = Terminal(alice_process)
        await alice.expect("you are alice", START_PATIENCE)
        await alice.type(f"/start {code}")
        await alice.expect("You are joining Building 3. Which room do you live in?")
        await alice.type("302")
        await alice.choose("Use “alice”")
        await alice.expect("You are registered in Building 3, room 302. Welcome, alice!")

        # "Something else" needs no photo: the whole report is typed.
        await alice.type("/report")
        await alice.choose("Continue without a photo")
        await alice.expect("What kind of problem is it?")
        await alice.choose("Something else")
        await alice.choose("My building: Building 3")
        await alice.choose("Skip")
        await alice.expect("Describe the problem in a few words")
        await alice.type("The stairwell door on floor 3 does not close")
        await alice.expect("Please check your report:")
        await alice.choose("Submit")
        await alice.expect("Thank you! Your report R-2026-000001 is in.")

        # Wang's console was not running when the card was queued; it shows up when it starts.
        async with linli_process("chat", "--as", "wang", env=env) as wang_process:
            wang = Terminal(wang_process)
            await wang.expect("you are wang", START_PATIENCE)
            await wang.expect("New report for you to handle:")
            await wang.expect("Report R-2026-000001")
            await wang.expect("Description: The stairwell door on floor 3 does not close")
            await wang.choose("Accept")
            await wang.expect("Accepted. When you have news, choose below:")
            await wang.expect("Status: in progress")
            wang_saw = await wang.finish()

        await alice.expect("Your report R-2026-000001 was accepted and is being handled.")
        alice_saw = await alice.finish()

    # The card went to wang's terminal only, once.
    assert wang_saw.count("New report for you to handle:") == 1
    assert "[to " not in alice_saw
    assert "New report for you to handle" not in alice_saw
    assert "Reject as not ours" not in alice_saw
    # And the resident's notice went to her terminal only.
    assert "was accepted and is being handled" not in wang_saw
