"""TPU VM launcher (``python -m launch <sweep> --launcher tpu``): a thin front to launch/tpu/*.sh."""

from __future__ import annotations

import argparse


def add_tpu_args(parser: argparse.ArgumentParser) -> None:
    """The TPU flags, for ``python -m launch``'s parser."""
    g = parser.add_argument_group("TPU VM (--launcher tpu)")
    g.add_argument("--tpu-name", default="", help="TPU VM name (default psweeps-<sweep>)")
    g.add_argument("--tpu-zone", default="us-central2-b", help="zone (default us-central2-b, v4)")
    g.add_argument("--tpu-project", default="", help="Google Cloud project (default: gcloud's)")
    g.add_argument("--tpu-type", default="v4-8", help="accelerator type, e.g. v4-8, v4-32")
    g.add_argument("--tpu-version", default="tpu-ubuntu2204-base", help="TPU VM runtime version")
    g.add_argument("--tpu-runs", default="", help="runs directory on GCS, e.g. gs://BUCKET/runs")
    g.add_argument("--tpu-queued", action="store_true", help="create through queued resources")
    g.add_argument("--tpu-spot", action="store_true", help="spot (preemptible) capacity")
    g.add_argument("--tpu-keep", action="store_true", help="keep the slice after the sweep")
    g.add_argument(
        "--tpu-eval-machine",
        default="e2-standard-8",
        help="machine type of the evaluator's CPU VM (default e2-standard-8)",
    )
