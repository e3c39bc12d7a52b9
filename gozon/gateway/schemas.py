"""The gateway's own request types (the proxied routes use the services' schemas)."""

from __future__ import annotations

import msgspec

from gozon.messages import Id


class WsQuery(msgspec.Struct, frozen=True):
    """The query of `GET /ws`: whose payment results the connection receives."""

    user_id: Id
