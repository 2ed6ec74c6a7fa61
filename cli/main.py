"""The ``pose-fast`` command group; each command lives in its own module and is imported on use."""
import difflib
import importlib

import click

__all__ = ["cli", "run", "COMMANDS"]

COMMANDS = {
    "demo": (".demo", "demo", "Show poses over a camera, file or stream."),
    "web": (".web", "web", "Serve the live view and the /detections API."),
    "create-db": (".db", "create_db", "Create or migrate the events database."),
    "bench": (".bench", "bench", "Measure inference, decoding and the pipeline; write a report."),
    "fetch-model": (".fetch", "fetch_model", "Download and verify the model files."),
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command runs (keeps start-up fast)."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module, __package__), attr)

    def resolve_command(self, ctx, args):
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            close = difflib.get_close_matches(name, COMMANDS, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint} The commands are: {', '.join(sorted(COMMANDS))}.")
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pose_fast")
def cli():
    """Real-time multi-person pose estimation with OpenVINO."""


def run(name, args=None):
    """Run one command as a program (the root scripts ``demo.py``, ``main.py``, ``create_db.py``)."""
    module, attr, _ = COMMANDS[name]
    command = getattr(importlib.import_module(module, __package__), attr)
    command.main(args=args, prog_name=f"pose-fast {name}")


if __name__ == "__main__":
    cli()
