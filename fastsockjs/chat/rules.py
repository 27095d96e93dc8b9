"""The chat's rules, without I/O: room and nickname syntax, the suffix that makes a
nickname unique, the per-connection rate limit, and the shape of every JSON message
of the wire protocol (docs/chat.md). Time is an argument everywhere."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

#: The room of a session that names none.
DEFAULT_ROOM = "lobby"
MAX_ROOM_LENGTH = 64
#: A nickname: 1..24 letters, digits, "_", "-" or "." (any script's letters and
#: digits), with at least one letter or digit.
MAX_NICK_LENGTH = 24
DEFAULT_NICK = "guest"
#: Longest message text, in characters.
MAX_TEXT_LENGTH = 2000
#: Messages replayed to whoever joins a room.
HISTORY_LENGTH = 100
#: Rate limit: a burst of RATE_BURST messages, refilled over RATE_PERIOD seconds.
RATE_BURST = 10
RATE_PERIOD = 5.0
#: Client suffixes tried before a random one: nick, nick-2 .. nick-MAX_SUFFIX.
MAX_SUFFIX = 50

_NICK_RE = re.compile(r"[\w.\-]+")
_NOT_NICK_RE = re.compile(r"[^\w.\-]+")


# -- names ------------------------------------------------------------------------------
def query_value(url: str, key: str) -> str | None:
    """The first ``key`` parameter of ``url``'s query string, if any."""
    for k, value in parse_qsl(url.partition("?")[2], keep_blank_values=True):
        if k == key:
            return value
    return None


def room_name(raw: str | None) -> str:
    """A room name: whitespace collapsed, at most 64 characters; ``lobby`` if empty."""
    if raw is None:
        return DEFAULT_ROOM
    value = " ".join(raw.split())[:MAX_ROOM_LENGTH]
    return value or DEFAULT_ROOM


def check_nick(raw: Any) -> str | None:
    """``raw`` as a valid nickname (NFC, trimmed), or None if it breaks the rules."""
    if not isinstance(raw, str):
        return None
    nick = unicodedata.normalize("NFC", raw).strip()
    if (0 < len(nick) <= MAX_NICK_LENGTH and _NICK_RE.fullmatch(nick)
            and any(c.isalnum() for c in nick)):
        return nick
    return None


def coerce_nick(raw: str | None) -> str:
    """A valid nickname made from whatever the URL gave: spaces become "_", other
    characters go, long names are cut; ``guest`` when nothing is left."""
    if not raw:
        return DEFAULT_NICK
    nick = unicodedata.normalize("NFC", raw).strip()
    nick = _NOT_NICK_RE.sub("_", nick).strip("_")[:MAX_NICK_LENGTH]
    return check_nick(nick) or DEFAULT_NICK


_CLIENT_RE = re.compile(r"[A-Za-z0-9_-]{8,64}")


def client_token(raw: str | None) -> str:
    """The page's own random id (``?client=``), kept across its reconnects so that it
    gets its name back at once; empty when absent or malformed."""
    return raw if raw is not None and _CLIENT_RE.fullmatch(raw) else ""


def nick_key(nick: str) -> str:
    """What must be unique in a room: "Ann" and "ann" are the same person's name."""
    return nick.casefold()


def nick_candidates(nick: str, random_suffix: str) -> Iterator[str]:
    """``nick``, ``nick-2`` .. ``nick-50``, then ``nick-<random_suffix>``: the names a
    joiner gets, in order, until one is free. The base is cut so each fits."""
    yield nick
    for n in [*range(2, MAX_SUFFIX + 1), None]:
        suffix = f"-{n}" if n is not None else f"-{random_suffix}"
        yield nick[: MAX_NICK_LENGTH - len(suffix)] + suffix


# -- rate limit -----------------------------------------------------------------------------
@dataclass
class TokenBucket:
    """``burst`` messages at once, then one per ``period / burst`` seconds."""

    burst: int = RATE_BURST
    period: float = RATE_PERIOD
    tokens: float = -1.0
    last: float = 0.0

    def __post_init__(self) -> None:
        if self.burst < 1 or self.period <= 0:
            raise ValueError("a rate limit needs burst >= 1 and period > 0")
        if self.tokens < 0:
            self.tokens = float(self.burst)

    def take(self, now: float) -> bool:
        """Spend one token at time ``now``; False (and nothing spent) if none is left."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def retry_after(self, now: float) -> float:
        """Seconds until the next token."""
        self._refill(now)
        return max(0.0, (1.0 - self.tokens) * self.period / self.burst)

    def _refill(self, now: float) -> None:
        if now > self.last:
            self.tokens = min(
                float(self.burst), self.tokens + (now - self.last) * self.burst / self.period
            )
            self.last = now


def parse_rate(value: str) -> tuple[int, float]:
    """``"10/5"``: a burst of 10 messages, refilled over 5 seconds."""
    burst, _, period = value.partition("/")
    try:
        b, p = int(burst), float(period or "1")
    except ValueError:
        raise ValueError(f"a rate is MESSAGES/SECONDS, e.g. 10/5, not {value!r}") from None
    if b < 1 or p <= 0:
        raise ValueError(f"a rate needs MESSAGES >= 1 and SECONDS > 0, not {value!r}")
    return b, p


# -- what clients send ------------------------------------------------------------------------
@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Rename:
    nick: Any


@dataclass(frozen=True)
class Invalid:
    reason: str


Command = Say | Rename | Invalid


def parse_command(data: Any) -> Command:
    """A client message: a JSON object ``{"type": "say", "text": ...}`` or
    ``{"type": "nick", "nick": ...}``; any other text is said as it is."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and "type" in obj:
            kind = obj["type"]
            if kind == "say":
                said = obj.get("text")
                return Say(said) if isinstance(said, str) else Invalid("say needs a text string")
            if kind == "nick":
                return Rename(obj.get("nick"))
            return Invalid(f"unknown message type {kind!r}")
    return Say(text)


# -- what the server sends --------------------------------------------------------------------
def dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def ms(now: float) -> int:
    """Wall-clock seconds as the protocol's integer milliseconds since the epoch."""
    return int(now * 1000)


def hello(*, worker: str, room: str, transport: str, nick: str, sender: str,
          limits: dict[str, Any], people: list[str] | None) -> dict[str, Any]:
    out = {"type": "hello", "worker": worker, "room": room, "transport": transport,
           "you": nick, "sender": sender, "limits": limits}
    if people is not None:
        out["people"] = people
    return out


def message(*, msg_id: str, text: str, nick: str, sender: str, worker: str,
            now: float) -> dict[str, Any]:
    # No room: the session knows it; a 128 KiB xhr-streaming response holds more.
    return {"type": "message", "id": msg_id, "text": text, "from": nick,
            "sender": sender, "worker": worker, "time": ms(now)}


def notice(kind: str, *, room: str, sender: str, now: float, people: list[str] | None,
           **fields: str) -> dict[str, Any]:
    """join (``nick``), leave (``nick``) or rename (``from``, ``to``); ``people`` is
    the room's presence list right after it, when known."""
    out: dict[str, Any] = {"type": kind, "room": room, **fields, "sender": sender,
                           "time": ms(now)}
    if people is not None:
        out["people"] = people
    return out


def error(reason: str, text: str, **extra: Any) -> dict[str, Any]:
    """To one connection: ``rate`` (with ``retry_after`` seconds), ``size``, ``nick``
    or ``bad-request``."""
    return {"type": "error", "reason": reason, "text": text, **extra}
