"""``pose-fast fetch-model``: download (or copy) and verify the model into the user cache."""
from pathlib import Path

import click

from pose_fast import model
from pose_fast.model import PRECISIONS, ModelError, print_progress

from .errors import UserError

__all__ = ["fetch_model"]


@click.command("fetch-model")
@click.option("--precision", type=click.Choice(PRECISIONS, case_sensitive=False), default="FP16-INT8",
              show_default=True,
              help="FP16 for a Neural Compute Stick 2; FP16-INT8 is fastest on CPU.")
@click.option("--from", "source", metavar="URL_OR_DIR",
              help="Base URL or folder holding the .xml and .bin (default: the Open Model Zoo storage).")
@click.option("--to", "target", type=click.Path(file_okay=False), help="Cache folder (default: per-user cache).")
def fetch_model(precision, source, target):
    """Download and verify human-pose-estimation-0001 for one precision."""
    click.echo(f"fetching human-pose-estimation-0001 {precision} from {source or 'the Open Model Zoo storage'}",
               err=True)
    try:
        xml = model.fetch_model(precision, source=source, target_dir=Path(target) if target else None,
                                progress=print_progress)
    except ModelError as exc:
        raise UserError(str(exc)) from None
    click.echo(str(xml))

