"""The chat service: rooms over a :class:`~fastsockjs.broker.Broker`, presence and
history in a :class:`~fastsockjs.chat.store.ChatStore`, and the per-connection limits.

One room is one broker channel (``chat:<room>``), so with the Redis broker every
worker's sessions of a room hear each other. A session's life:

1. it subscribes to its room at once (nothing said from then on is missed);
2. once the broker's backend carries the channel, it claims its nickname (a suffix
   on a clash) and gets ``hello``, then ``history``; everyone gets ``join`` with the
   new presence list;
3. each text it sends is checked (rate, size) and published as ``message``; a
   ``nick`` command renames it (``rename`` to everyone);
4. on close it releases the name and everyone gets ``leave``.

With a shared store a resync task renews this worker's leases and sends each local
room the presence list again when it changed (a dead worker's people drop out).
The wire protocol is in docs/chat.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from fastsockjs.broker import Broker
from fastsockjs.chat import rules
from fastsockjs.chat.store import ChatStore
from fastsockjs.connection import Connection

log = logging.getLogger("fastsockjs.chat")

#: Messages a session may send before its hello; later ones are refused as too fast.
MAX_EARLY = 20


@dataclass(eq=False)
class Member:
    """One connection in one room."""

    conn: Connection
    room: str
    nick: str
    bucket: rules.TokenBucket
    client: str = ""
    joined: bool = False  # in the room's presence
    greeted: bool = False  # has had its hello and history
    closed: bool = False
    early: list[Any] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def owner(self) -> str:
        return self.conn.id

    @property
    def sender(self) -> str:
        return self.conn.id[:8]

    @property
    def channel(self) -> str:
        return "chat:" + self.room


class ChatService:
    """Serves chat sessions; :meth:`open` is the Server's ``connection`` handler."""

    def __init__(
        self,
        broker: Broker,
        store: ChatStore,
        *,
        worker: str,
        clock: Callable[[], float] = time.time,
        rate: tuple[int, float] = (rules.RATE_BURST, rules.RATE_PERIOD),
        max_text: int = rules.MAX_TEXT_LENGTH,
        resync_interval: float | None = None,
        ready_timeout: float = 2.0,
    ) -> None:
        self.broker = broker
        self.store = store
        self.worker = worker
        self.clock = clock
        self.rate = rate
        self.max_text = max_text
        lease = getattr(store, "lease", 15.0)
        self.resync_interval = resync_interval if resync_interval is not None else lease / 3
        self.ready_timeout = ready_timeout
        self.rooms: dict[str, dict[Connection, Member]] = {}  # local members
        self._last_people: dict[str, list[str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._resync: asyncio.Task[None] | None = None

    @property
    def limits(self) -> dict[str, Any]:
        return {"text": self.max_text, "nick": rules.MAX_NICK_LENGTH, "burst": self.rate[0],
                "period": self.rate[1], "history": getattr(self.store, "history_length", 0)}

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("chat task failed", exc_info=task.exception())

    # -- a session's life ---------------------------------------------------------------------
    def open(self, conn: Connection) -> None:
        room = rules.room_name(rules.query_value(conn.url, "room"))
        nick = rules.coerce_nick(rules.query_value(conn.url, "nick"))
        client = rules.client_token(rules.query_value(conn.url, "client"))
        member = Member(conn, room, nick, rules.TokenBucket(*self.rate), client)
        conn.on("data", lambda data: self.receive(member, data))
        conn.on("close", lambda: self._close(member))
        self._spawn(self.join(member))

    async def join(self, member: Member) -> None:
        """Claim the name, tell the room, then subscribe: so the room's traffic reaches
        the session only from its hello on (its own join is in the hello)."""
        conn = member.conn
        async with member.lock:
            member.nick = await self.store.claim(
                member.room, member.nick, member.owner, self.clock(), secrets.token_hex(2),
                member.client,
            )
            if member.closed:  # gone while the name was being claimed
                await self.store.release(member.room, member.nick, member.owner)
                return
            self.rooms.setdefault(member.room, {})[conn] = member
            member.joined = True
            log.info("%s joined %r as %r (%s)", member.sender, member.room, member.nick,
                     conn.protocol)
            people = await self._announce(member, "join", nick=member.nick)
            if not self.broker.subscribe(conn, member.channel):
                return  # closed meanwhile: _close() has sent the leave
            await self.broker.ready(member.channel, timeout=self.ready_timeout)
            conn.write(rules.dumps(rules.hello(
                worker=self.worker, room=member.room, transport=conn.protocol,
                nick=member.nick, sender=member.sender, limits=self.limits, people=people,
            )))
            history = await self.store.history(member.room)
            conn.write(rules.dumps({"type": "history", "room": member.room,
                                    "messages": history}))
            member.greeted = True
            self._start_resync()
        early, member.early = member.early, []
        for data in early:
            self.receive(member, data)

    def receive(self, member: Member, data: Any) -> None:
        if not member.greeted:
            if len(member.early) < MAX_EARLY:
                member.early.append(data)
            else:
                self._refuse(member, rules.error(
                    "rate", "Too many messages before joining: wait a moment.", retry_after=1.0))
            return
        command = rules.parse_command(data)
        if isinstance(command, rules.Invalid):
            self._refuse(member, rules.error("bad-request", command.reason))
            return
        now = self.clock()
        if isinstance(command, rules.Say):
            text = command.text
            if not text.strip():
                return
            if len(text) > self.max_text:
                self._refuse(member, rules.error(
                    "size", f"Message too long: {len(text)} characters, at most"
                    f" {self.max_text}.", limit=self.max_text))
                return
            if not self._allowed(member, now):
                return
            msg = rules.message(
                msg_id=secrets.token_hex(6), text=text, nick=member.nick,
                sender=member.sender, worker=self.worker, now=now,
            )
            self.broker.publish(member.channel, rules.dumps(msg))
            self.store.append(member.room, msg)
            return
        if not self._allowed(member, now):
            return
        self._spawn(self.rename(member, command.nick))

    def _allowed(self, member: Member, now: float) -> bool:
        if member.bucket.take(now):
            return True
        wait = member.bucket.retry_after(now)
        self._refuse(member, rules.error(
            "rate", f"Slow down: at most {self.rate[0]} messages per {self.rate[1]:g} s;"
            f" try again in {wait:.1f} s.", retry_after=round(wait, 2)))
        return False

    def _refuse(self, member: Member, error: dict[str, Any]) -> None:
        member.conn.write(rules.dumps(error))

    async def rename(self, member: Member, raw: Any) -> None:
        wanted = rules.check_nick(raw)
        if wanted is None:
            self._refuse(member, rules.error(
                "nick", f"A name is 1 to {rules.MAX_NICK_LENGTH} letters, digits, '_', '-'"
                " or '.'.", limit=rules.MAX_NICK_LENGTH))
            return
        async with member.lock:
            if member.closed or wanted == member.nick:
                return
            old = member.nick
            new = await self.store.claim(
                member.room, wanted, member.owner, self.clock(), secrets.token_hex(2),
                member.client,
            )
            if member.closed:
                await self.store.release(member.room, new, member.owner)
                return
            if rules.nick_key(new) != rules.nick_key(old):
                await self.store.release(member.room, old, member.owner)
            member.nick = new
            await self._announce(member, "rename", **{"from": old, "to": new})

    def _close(self, member: Member) -> None:
        member.closed = True
        if member.joined:
            member.joined = False
            local = self.rooms.get(member.room)
            if local is not None:
                local.pop(member.conn, None)
                if not local:
                    del self.rooms[member.room]
                    self._last_people.pop(member.room, None)
            self._spawn(self.leave(member))

    async def leave(self, member: Member) -> None:
        async with member.lock:
            log.info("%s left %r (%r)", member.sender, member.room, member.nick)
            await self.store.release(member.room, member.nick, member.owner)
            people = await self.store.people(member.room, self.clock())
            if people is not None and member.nick in people:
                # The same page, reconnected, already holds the name again: no farewell.
                self.broker.publish(member.channel, rules.dumps(
                    {"type": "people", "room": member.room, "people": people}))
                return
            await self._announce(member, "leave", nick=member.nick)

    async def _announce(self, member: Member, kind: str, **fields: str) -> list[str] | None:
        """A notice to the whole room, with the presence list right after the change."""
        now = self.clock()
        people = await self.store.people(member.room, now)
        if people is not None and member.room in self.rooms:
            self._last_people[member.room] = people
        self.broker.publish(member.channel, rules.dumps(rules.notice(
            kind, room=member.room, sender=member.sender, now=now, people=people, **fields)))
        return people

    # -- shared presence ------------------------------------------------------------------------
    def _start_resync(self) -> None:
        if self.store.shared and (self._resync is None or self._resync.done()):
            self._resync = self._spawn(self._resync_loop())

    async def _resync_loop(self) -> None:
        """Renew this worker's leases; resend a room's list when it changed."""
        while self.rooms:
            await asyncio.sleep(self.resync_interval)
            await self.resync()

    async def resync(self) -> None:
        for room, local in list(self.rooms.items()):
            now = self.clock()
            held = [(m.nick, m.owner, m.client) for m in local.values() if m.joined]
            await self.store.refresh(room, held, now)
            people = await self.store.people(room, now)
            if people is None or room not in self.rooms:
                continue
            if people != self._last_people.get(room):
                self._last_people[room] = people
                self.broker.deliver("chat:" + room, rules.dumps(
                    {"type": "people", "room": room, "people": people}))

    async def close(self) -> None:
        """Cancel the service's tasks (tests; a worker's exit ends them anyway)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):  # cancelled, or already logged
                await task
        await self.store.close()
