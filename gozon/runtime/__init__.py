"""A small actor runtime on anyio: supervised restarts, bounded mailboxes, drain on signal.

Written against anyio only, so it runs (and is tested) on asyncio and trio alike.
"""

from gozon.runtime.backoff import Backoff
from gozon.runtime.mailbox import Mailbox
from gozon.runtime.stop import unless_stopped
from gozon.runtime.supervisor import Child, RestartPolicy, SupervisorGaveUp, supervise

__all__ = ["Backoff", "Child", "Mailbox", "RestartPolicy", "SupervisorGaveUp", "supervise", "unless_stopped"]
