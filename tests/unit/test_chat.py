"""The chat's server side without sockets: nickname rules and the clash suffix, the
rate and size limits, the history cap, and whole sessions (join, say, rename, leave)
through the service with an in-memory broker and store and a fake clock. The Redis
store is exercised against a real redis-server in tests/deploy/test_chat_store.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from fastsockjs.broker import MemoryBroker
from fastsockjs.chat import ChatService, MemoryChatStore, rules
from fastsockjs.connection import Connection
from fastsockjs.protocol.session import ReadyState


# -- rules ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "want"), [
    ("ann", "ann"), ("  Zoë.K-9_ ", "Zoë.K-9_"), ("名前", "名前"), ("a" * 24, "a" * 24),
    ("a" * 25, None), ("", None), ("two words", None), ("<b>", None), ("---", None),
    (None, None), (42, None), ("a\nb", None),
])
def test_check_nick(raw: Any, want: str | None) -> None:
    assert rules.check_nick(raw) == want


@pytest.mark.parametrize(("raw", "want"), [
    (None, "guest"), ("", "guest"), ("Ann Lee", "Ann_Lee"), ("<script>x", "script_x"),
    ("!!!", "guest"), ("b" * 40, "b" * 24),
])
def test_coerce_nick_makes_a_valid_name_from_a_url(raw: str | None, want: str) -> None:
    assert rules.coerce_nick(raw) == want
    assert rules.check_nick(rules.coerce_nick(raw)) == want


def test_nick_candidates_add_a_suffix_that_fits() -> None:
    names = list(rules.nick_candidates("ann", "f00d"))
    assert names[:3] == ["ann", "ann-2", "ann-3"]
    assert names[-2:] == [f"ann-{rules.MAX_SUFFIX}", "ann-f00d"]
    long = "x" * rules.MAX_NICK_LENGTH
    for name in rules.nick_candidates(long, "f00d"):
        assert rules.check_nick(name) == name  # always valid, never too long
    assert list(rules.nick_candidates(long, "f00d"))[1] == "x" * 22 + "-2"


def test_room_names() -> None:
    assert rules.room_name(None) == "lobby"
    assert rules.room_name("  ") == "lobby"
    assert rules.room_name(" a   b ") == "a b"
    assert len(rules.room_name("r" * 100)) == rules.MAX_ROOM_LENGTH
    assert rules.query_value("/chat/1/2/xhr?room=r%20x&nick=n", "room") == "r x"
    assert rules.query_value("/chat/1/2/xhr", "room") is None


def test_token_bucket_allows_a_burst_then_refills_with_time() -> None:
    bucket = rules.TokenBucket(burst=3, period=3.0, last=100.0)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after(100.0) == pytest.approx(1.0)
    assert not bucket.take(100.5)
    assert bucket.take(101.0)
    assert not bucket.take(101.0)
    assert [bucket.take(200.0) for _ in range(4)] == [True, True, True, False]  # capped
    with pytest.raises(ValueError):
        rules.TokenBucket(burst=0)


def test_parse_rate() -> None:
    assert rules.parse_rate("10/5") == (10, 5.0)
    assert rules.parse_rate("3") == (3, 1.0)
    for bad in ("x/1", "0/1", "1/0", "1/-2"):
        with pytest.raises(ValueError):
            rules.parse_rate(bad)


def test_parse_command() -> None:
    assert rules.parse_command("hi") == rules.Say("hi")
    assert rules.parse_command('{"type":"say","text":"<b>x</b>"}') == rules.Say("<b>x</b>")
    assert rules.parse_command('{"type":"nick","nick":"bo"}') == rules.Rename("bo")
    assert isinstance(rules.parse_command('{"type":"shout"}'), rules.Invalid)
    assert isinstance(rules.parse_command('{"type":"say","text":5}'), rules.Invalid)
    # Text that only looks like JSON is said as it is.
    assert rules.parse_command("{not json") == rules.Say("{not json")
    assert rules.parse_command('{"a": 1}') == rules.Say('{"a": 1}')
    assert rules.parse_command(["x"]) == rules.Say('["x"]')


# -- the memory store -------------------------------------------------------------------------
def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await coro

    return asyncio.run(main())


def test_memory_store_suffixes_clashes_case_insensitively() -> None:
    async def main() -> None:
        store = MemoryChatStore()
        assert await store.claim("r", "Ann", "c1", 0) == "Ann"
        assert await store.claim("r", "ann", "c2", 0) == "ann-2"
        assert await store.claim("r", "ANN", "c3", 0) == "ANN-3"
        assert await store.claim("other", "ann", "c4", 0) == "ann"  # per room
        assert await store.claim("r", "Ann", "c1", 0) == "Ann"  # its own name again
        assert await store.people("r", 0) == ["Ann", "ann-2", "ANN-3"]
        await store.release("r", "ann", "c2")  # not c2's: "ann" is c1's key
        assert await store.people("r", 0) == ["Ann", "ann-2", "ANN-3"]
        await store.release("r", "ann-2", "c2")
        assert await store.claim("r", "ann", "c5", 0) == "ann-2"  # the freed suffix
        for owner in range(60):
            await store.claim("full", "x", f"o{owner}", 0, random_suffix=f"{owner:04x}")
        names = await store.people("full", 0)
        assert names is not None and len(names) == 60 and len(set(names)) == 60

    run(main())


def test_memory_store_keeps_the_last_100_messages() -> None:
    async def main() -> None:
        store = MemoryChatStore()
        for i in range(250):
            store.append("r", {"id": i})
        kept = await store.history("r")
        assert [m["id"] for m in kept] == list(range(150, 250))
        assert await store.history("empty") == []

    run(main())


# -- the service ------------------------------------------------------------------------------
class FakeSession:
    """What the chat and the broker touch of a session: its state and its writes."""

    def __init__(self) -> None:
        self.state = ReadyState.OPEN
        self.sent: list[dict[str, Any]] = []

    def send(self, message: str) -> bool:
        if self.state is not ReadyState.OPEN:
            return False
        self.sent.append(json.loads(message))
        return True

    def write_quoted(self, quoted: str, text: str) -> bool:
        return self.send(text)


class FakeConn(Connection):
    """A Connection that keeps its fake session at hand (``fake``)."""

    __slots__ = ("fake",)

    def __init__(self, session: FakeSession) -> None:
        super().__init__(session)
        self.fake = session


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Chat:
    def __init__(self, **kwargs: Any) -> None:
        self.clock = Clock()
        self.broker = MemoryBroker()
        self.store = MemoryChatStore(kwargs.pop("history_length", 100))
        self.service = ChatService(self.broker, self.store, worker="w9", clock=self.clock,
                                   **kwargs)

    async def join(self, room: str = "r", nick: str | None = None) -> FakeConn:
        conn = FakeConn(FakeSession())
        conn.url = f"/chat/000/x/websocket?room={room}" + (f"&nick={nick}" if nick else "")
        conn.protocol = "websocket"
        self.service.open(conn)
        await settle(lambda: bool(of(conn, "history")))
        return conn

    def close(self, conn: FakeConn) -> None:
        conn.fake.state = ReadyState.CLOSED
        conn.emit("close")
        conn.remove_all_listeners()


def sent(conn: Connection) -> list[dict[str, Any]]:
    assert isinstance(conn, FakeConn)
    return list(conn.fake.sent)


def of(conn: Connection, kind: str) -> list[dict[str, Any]]:
    return [m for m in sent(conn) if m["type"] == kind]


async def settle(check: Callable[[], bool], rounds: int = 200) -> None:
    """Let the service's tasks run until ``check()`` holds (bounded)."""
    for _ in range(rounds):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("not settled")


def test_joining_gives_hello_history_and_presence_to_everyone() -> None:
    async def main() -> None:
        chat = Chat()
        ann = await chat.join(nick="ann")
        hello = of(ann, "hello")[0]
        assert hello["you"] == "ann" and hello["room"] == "r" and hello["worker"] == "w9"
        assert hello["limits"]["text"] == rules.MAX_TEXT_LENGTH
        assert of(ann, "history") == [{"type": "history", "room": "r", "messages": []}]
        assert hello["people"] == ["ann"]
        assert sent(ann)[0]["type"] == "hello"  # first, before any room traffic
        bob = await chat.join(nick="ann")  # a clash: the server picks the suffix
        assert of(bob, "hello")[0]["you"] == "ann-2"
        assert of(bob, "hello")[0]["people"] == ["ann", "ann-2"]
        assert sent(bob)[0]["type"] == "hello"
        joins = of(ann, "join")
        assert [j["nick"] for j in joins] == ["ann-2"]
        assert joins[-1]["people"] == ["ann", "ann-2"]
        assert joins[-1]["time"] == int(chat.clock.now * 1000)
        other = await chat.join(room="elsewhere", nick="ann")
        assert of(other, "hello")[0]["you"] == "ann"
        assert len(of(ann, "join")) == 1  # rooms do not mix
        await chat.service.close()

    run(main())


def test_messages_carry_the_nickname_and_markup_stays_text() -> None:
    async def main() -> None:
        chat = Chat()
        ann, bob = await chat.join(nick="ann"), await chat.join(nick="bob")
        ann.emit("data", "<img src=x onerror=alert(1)>")
        bob.emit("data", json.dumps({"type": "say", "text": "hi ann"}))
        for conn in (ann, bob):
            msgs = of(conn, "message")
            assert [(m["from"], m["text"]) for m in msgs] == [
                ("ann", "<img src=x onerror=alert(1)>"), ("bob", "hi ann")]
            assert msgs[0]["sender"] == ann.id[:8] and msgs[0]["worker"] == "w9"
        assert len({m["id"] for m in of(ann, "message")}) == 2
        await chat.service.close()

    run(main())


def test_rate_limit_refuses_with_a_notice_and_recovers() -> None:
    async def main() -> None:
        chat = Chat(rate=(3, 3.0))
        ann, bob = await chat.join(nick="ann"), await chat.join(nick="bob")
        for i in range(5):
            ann.emit("data", f"m{i}")
        assert [m["text"] for m in of(bob, "message")] == ["m0", "m1", "m2"]
        errors = of(ann, "error")
        assert [e["reason"] for e in errors] == ["rate", "rate"]
        assert errors[0]["retry_after"] == pytest.approx(1.0)
        assert "Slow down" in errors[0]["text"]
        assert of(bob, "error") == []  # per connection: bob may still talk
        bob.emit("data", "bob speaks")
        chat.clock.now += 1.0
        ann.emit("data", "later")
        assert [m["text"] for m in of(bob, "message")][-2:] == ["bob speaks", "later"]
        await chat.service.close()

    run(main())


def test_size_limit_refuses_long_messages() -> None:
    async def main() -> None:
        chat = Chat(max_text=10)
        ann = await chat.join(nick="ann")
        ann.emit("data", "x" * 11)
        ann.emit("data", "x" * 10)
        ann.emit("data", "   ")  # blank: ignored
        assert [m["text"] for m in of(ann, "message")] == ["x" * 10]
        error = of(ann, "error")[0]
        assert error["reason"] == "size" and error["limit"] == 10
        await chat.service.close()

    run(main())


def test_rename_checks_the_name_and_resolves_clashes() -> None:
    async def main() -> None:
        chat = Chat()
        ann, bob = await chat.join(nick="ann"), await chat.join(nick="bob")
        bob.emit("data", json.dumps({"type": "nick", "nick": "<b>bad</b>"}))
        bob.emit("data", json.dumps({"type": "nick", "nick": "ANN"}))
        await settle(lambda: bool(of(ann, "rename")))
        rename = of(ann, "rename")[0]
        assert (rename["from"], rename["to"]) == ("bob", "ANN-2")
        assert rename["people"] == ["ann", "ANN-2"]
        assert of(bob, "error")[0]["reason"] == "nick"
        bob.emit("data", "as ANN-2")
        assert of(ann, "message")[-1]["from"] == "ANN-2"
        # The old name is free again.
        carl = await chat.join(nick="bob")
        assert of(carl, "hello")[0]["you"] == "bob"
        await chat.service.close()

    run(main())


def test_leaving_tells_the_others_and_frees_the_name() -> None:
    async def main() -> None:
        chat = Chat()
        ann, bob = await chat.join(nick="ann"), await chat.join(nick="bob")
        chat.close(bob)
        await settle(lambda: bool(of(ann, "leave")))
        leave = of(ann, "leave")[0]
        assert leave["nick"] == "bob" and leave["people"] == ["ann"]
        assert chat.broker.members("chat:r") == [ann]
        assert list(chat.service.rooms["r"]) == [ann]
        bob2 = await chat.join(nick="bob")
        assert of(bob2, "hello")[0]["you"] == "bob"
        await chat.service.close()

    run(main())


def test_a_late_joiner_gets_the_last_messages_only() -> None:
    async def main() -> None:
        chat = Chat(rate=(1000, 1.0), history_length=5)
        ann = await chat.join(nick="ann")
        for i in range(8):
            ann.emit("data", f"m{i}")
        late = await chat.join(nick="late")
        history = of(late, "history")[0]["messages"]
        assert [m["text"] for m in history] == [f"m{i}" for i in range(3, 8)]
        assert all(m["from"] == "ann" for m in history)
        await chat.service.close()

    run(main())


def test_messages_before_the_hello_are_kept_until_it() -> None:
    async def main() -> None:
        chat = Chat()
        ann = await chat.join(nick="ann")
        early = FakeConn(FakeSession())
        early.url = "/chat/000/y/websocket?room=r&nick=early"
        chat.service.open(early)
        early.emit("data", "first words")  # the join is still under way
        await settle(lambda: bool(of(ann, "message")))
        assert of(ann, "message")[0]["from"] == "early"
        await chat.service.close()

    run(main())


def test_a_reconnecting_page_gets_its_name_back_without_a_farewell() -> None:
    async def main() -> None:
        chat = Chat()
        ann = await chat.join(nick="ann")
        old = FakeConn(FakeSession())
        old.url = "/chat/000/a/websocket?room=r&nick=bob&client=tab-0123456789"
        chat.service.open(old)
        await settle(lambda: bool(of(old, "history")))
        # The page reconnects (a new session) before the old one is noticed as gone.
        new = FakeConn(FakeSession())
        new.url = "/chat/000/b/websocket?room=r&nick=bob&client=tab-0123456789"
        chat.service.open(new)
        await settle(lambda: bool(of(new, "history")))
        assert of(new, "hello")[0]["you"] == "bob"  # not bob-2
        stranger = await chat.join(nick="bob")
        assert of(stranger, "hello")[0]["you"] == "bob-2"  # another page: a suffix
        chat.close(old)
        await settle(lambda: of(ann, "people") != [])
        assert of(ann, "leave") == []
        assert of(ann, "people")[-1]["people"] == ["ann", "bob", "bob-2"]
        await chat.service.close()

    run(main())
