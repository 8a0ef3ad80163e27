"""The ``[[setup]]`` sections: command lines a host runs once the lab is configured (FORMAT, ...)."""

from __future__ import annotations

from .spec import LabSpec, SetupCommand
from .spec_reader import TableReader, listing
from .values import split_command


class SetupReader(TableReader):
    def setup(self, raw: object, where: str, spec: LabSpec) -> list[SetupCommand]:
        t = self.table(raw, where, ("host", "commands", "command", "stdin"), ("host",))
        host = self.string(t, "host", where)
        if host not in {h.name for h in spec.hosts}:
            raise self.fail(
                f"{where}.host", f"no host named {host!r} (hosts: {listing(h.name for h in spec.hosts)})"
            )
        lines = self.strings(t, "command", where) + self.strings(t, "commands", where)
        if not lines:
            raise self.fail(where, "missing 'commands' (a list of command lines)")
        stdin = self.string(t, "stdin", where, "")
        if stdin and len(lines) != 1:
            raise self.fail(
                f"{where}.stdin",
                "stdin goes to one command: put that command in a [[setup]] entry of its own",
            )
        out = []
        for i, line in enumerate(lines):
            try:
                argv = split_command(line)
            except ValueError as exc:
                raise self.fail(f"{where}.commands[{i}]", str(exc)) from None
            if not argv:
                raise self.fail(f"{where}.commands[{i}]", "empty command line")
            out.append(SetupCommand(host, line, tuple(argv), stdin, f"{where}.commands[{i}]"))
        return out
