"""The ``embedtune`` command.

Every command talks to a server through ``embedtune.client`` (``--url``/``EMBEDTUNE_URL``,
``EMBEDTUNE_API_KEY``): ``tasks``, ``batches``, ``models``, ``deployments`` (and ``embed``),
``feedback``, printing through ``output`` and ``json_output``. The admin commands
``serve``, ``worker`` and ``keys`` (``admin``) run beside the server on its database.
Tables are for people; ``--json`` (before or after the subcommand) prints the API's answer
exactly as it came, ``--fields``/``--jq`` pick parts of it. Errors are one line on stderr,
``error: …``: exit code 1 for a failed request, 2 for a wrong command line.

Every run starts in a fresh process, so start-up is kept short: a command imports only the
wire schemas it reads (inside the client's calls), and the modules that declare commands
do without ``from __future__ import annotations``, since typer reads every command's
annotations at each start and would compile each one from its string.
"""

from embedtune.cli.output import err, out
from embedtune.cli.root import app, main

__all__ = ["app", "err", "main", "out"]
