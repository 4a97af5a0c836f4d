"""The ``modelmonitor`` command line.

Subcommands import their implementation lazily, so the offline commands
(``check``, ``baseline``) start fast and never pull in kopf or the Kubernetes client.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Callable, Sequence
from typing import cast

from modelmonitor import __version__
from modelmonitor.core.limits import ReadLimits
from modelmonitor.core.report_seal import TERMINATION_MESSAGE_PATH

Handler = Callable[[argparse.Namespace], int]


def _lazy(target: str) -> Handler:
    """Return a handler that imports ``module:function`` only when the command runs."""
    module_name, func_name = target.split(":")

    def call(args: argparse.Namespace) -> int:
        module = importlib.import_module(module_name)
        return cast(Handler, getattr(module, func_name))(args)

    return call


def _version(_: argparse.Namespace) -> int:
    print(f"modelmonitor {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelmonitor",
        description="Monitor ML inference services for drift and SLO breaches.",
    )
    parser.add_argument("--version", action="version", version=f"modelmonitor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("version", help="print the version and exit")
    p.set_defaults(handler=_version)

    p = sub.add_parser("run", help="run the operator against the current kubeconfig or in-cluster")
    _add_run_arguments(p)
    p.set_defaults(handler=_lazy("modelmonitor.edge.operator_main:run_command"))

    p = sub.add_parser(
        "check",
        help="offline drift + data quality analysis of two files (no cluster needed)",
        description="Compare a current data file with a reference (data file or profile "
        "saved by 'baseline'): per-feature drift and data quality. Exit 0 when the analysis "
        "ran (drift or not), 2 on bad input.",
    )
    p.add_argument(
        "--reference",
        required=True,
        help="reference data file (csv, tsv, jsonl, parquet, npy) or a saved profile",
    )
    p.add_argument(
        "--current",
        required=True,
        help="current data file, or a partitioned window: a directory of data files, a "
        "quoted glob ('day/*.parquet') or an S3 prefix (s3://bucket/day=1/; credentials from "
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), profiled file by file in bounded memory",
    )
    p.add_argument(
        "--endpoint-url",
        help="with --current s3://...: an S3-compatible server (scheme, host, port), addressed "
        "path-style (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else AWS)",
    )
    p.add_argument(
        "--max-objects",
        type=int,
        default=1000,
        help="with --current s3://...: refuse a prefix holding more data objects (default "
        "1000, at most 10000)",
    )
    p.add_argument("--features-file", help="YAML/JSON list of {name, type} feature specs")
    p.add_argument(
        "--method",
        default="auto",
        help="drift method for every feature it fits (others use auto), e.g. ks, wasserstein, "
        "psi, jensenshannon, chi2 (default: auto)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="the method's threshold (a named test: its level); under auto, the threshold of "
        "the distances auto picks (tests auto picks use --alpha; the report notes it)",
    )
    p.add_argument(
        "--alpha", type=float, default=0.05, help="significance level of the tests (default 0.05)"
    )
    p.add_argument(
        "--correction",
        default="bonferroni",
        choices=["bonferroni", "fdr", "none"],
        help="multiple-testing correction across features",
    )
    p.add_argument("--drift-share", type=float, default=0.5, help="dataset drift share (0-1]")
    p.add_argument(
        "--categorical",
        metavar="COLS",
        help="comma-separated columns to treat as categorical (e.g. integer-coded classes)",
    )
    p.add_argument(
        "--format",
        default="table",
        choices=["table", "json", "markdown", "html"],
        help="output format (markdown: for a CI step summary; html: one file with charts, "
        "needs the 'report' extra)",
    )
    p.add_argument("--target", help="model quality: column with the true labels or values")
    p.add_argument("--prediction", help="model quality: column with the predicted labels/values")
    p.add_argument(
        "--proba",
        help="model quality: probability column(s), comma-separated: the positive class's "
        "(binary) or one per class in sorted class order",
    )
    p.add_argument(
        "--labels",
        metavar="FILE",
        help="performance with late labels: a file of (id, label) rows, the label column "
        "named as --target, joined to the current file's rows by --id-column; rows without "
        "a label yet are estimated only",
    )
    p.add_argument(
        "--id-column",
        default="id",
        metavar="COL",
        help="with --labels: the request id column, in both files (default: id)",
    )
    p.add_argument(
        "--task",
        default="auto",
        choices=["auto", "classification", "regression"],
        help="model quality task; also types --target/--prediction for drift: categorical "
        "for classification (auto: text labels, --proba, or <= 20 integer values)",
    )
    p.add_argument(
        "--fail-on-drift",
        action="store_true",
        help="exit 1 (instead of 0) when the dataset drifted, and 3 when no feature could "
        "be evaluated, for CI pipelines",
    )
    p.add_argument(
        "--engine",
        default="stream",
        choices=["stream", "dask", "dask-local"],
        help="a partitioned --current: where its files are profiled: stream (this process, "
        "one file at a time), dask (the cluster of --scheduler) or dask-local (a local "
        "cluster of --workers processes); dask needs the dask extra",
    )
    p.add_argument("--scheduler", help="--engine dask: the scheduler's address, tcp://host:port")
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="--engine dask-local: worker processes (default 2)",
    )
    add_limit_arguments(p)
    p.set_defaults(handler=_lazy("modelmonitor.edge.offline:check_command"))

    p = sub.add_parser(
        "baseline",
        help="compute a reference profile from a data file",
        description="Stream a data file in chunks into a reference profile (JSON) for "
        "'check --reference PROFILE' and the operator's reference.",
    )
    p.add_argument("--data", required=True, help="reference data file (csv, jsonl, parquet, npy)")
    p.add_argument(
        "--output",
        required=True,
        help="where to write the profile (JSON); its directory must exist",
    )
    p.add_argument("--features-file", help="YAML/JSON list of {name, type} feature specs")
    p.add_argument(
        "--exact-limit",
        type=int,
        default=1000,
        help="keep the exact sample of numerical features with at most this many values "
        "(p-value tests need it); larger ones are summarised by a quantile sketch (default 1000)",
    )
    add_limit_arguments(p)
    p.set_defaults(handler=_lazy("modelmonitor.edge.offline:baseline_command"))

    p = sub.add_parser(
        "anomalies",
        help="robust seasonal anomalies of one time series in a file (no cluster needed)",
        description="Judge each point of a series against the median and MAD of the same "
        "slot (hour of day, hour of week) in earlier seasons; print the sustained departures. "
        "Exit 0 when the analysis ran, 2 on bad input.",
    )
    _add_anomalies_arguments(p)
    add_limit_arguments(p)
    p.set_defaults(handler=_lazy("modelmonitor.edge.anomalies_cli:anomalies_command"))

    p = sub.add_parser(
        "job", help="one monitoring run of a ModelMonitor (what a job-mode Job executes)"
    )
    p.add_argument("--namespace", required=True, help="the ModelMonitor's namespace")
    p.add_argument("--name", required=True, help="the ModelMonitor's name")
    p.add_argument("--run-id", default="", help="the run's id (for logs)")
    p.add_argument("--job-name", default="", help="owning Job (default: $JOB_NAME)")
    p.add_argument("--job-uid", default="", help="owning Job's UID (default: $JOB_UID)")
    p.add_argument(
        "--reference-root",
        default="",
        help="where spec.reference.pvc's claim is mounted (the Job sets it); pvc.path is "
        "read inside it",
    )
    p.add_argument(
        "--window-root",
        default="",
        help="where spec.data.partitions' claim is mounted (the Job sets it); its path is "
        "read inside it",
    )
    p.add_argument(
        "--dask-cluster",
        default="",
        help="the run's DaskJob (mode dask with cluster; the operator sets it): profile on "
        "its scheduler ($DASK_SCHEDULER_ADDRESS, which must name it) and store the report "
        "owned by this pod ($JOB_NAME, $JOB_UID)",
    )
    p.add_argument(
        "--print-only", action="store_true", help="print the report, store nothing (debugging)"
    )
    p.add_argument(
        "--termination-log",
        default=TERMINATION_MESSAGE_PATH,
        help="where to write the stored report's sha256, the container's "
        "terminationMessagePath (the operator accepts only the report matching it)",
    )
    p.set_defaults(handler=_lazy("modelmonitor.edge.job_command:job_command"))

    return parser


def _add_anomalies_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--series", required=True, help="the series: a csv, tsv, jsonl or parquet file")
    p.add_argument(
        "--time-column",
        required=True,
        help="column with the times: epoch seconds, or ISO-8601 (naive times are UTC)",
    )
    p.add_argument("--value-column", required=True, help="column with the values (empty: missing)")
    p.add_argument(
        "--season",
        default="1d",
        help="seasons, comma-separated, tried longest first once they have enough history "
        "(1d: hour of day; 1d,7d: hour of week, hour of day until two weeks are seen; "
        "default 1d)",
    )
    p.add_argument("--slot", default="1h", help="width of a slot inside a season (default 1h)")
    p.add_argument(
        "--sensitivity",
        type=float,
        default=3.0,
        help="half-width of the band in robust standard deviations (1.4826 MAD; default 3)",
    )
    p.add_argument(
        "--for",
        dest="for_",
        default="0s",
        help="how long a departure must last to be an anomaly, and a recovery to end one "
        "(default 0s: one point)",
    )
    p.add_argument(
        "--min-cycles",
        type=int,
        default=2,
        help="earlier seasons a slot needs before its points are judged (warm-up; default 2)",
    )
    p.add_argument(
        "--relative-floor",
        type=float,
        default=0.05,
        help="least half-width of the band as a share of the median (default 0.05)",
    )
    p.add_argument(
        "--absolute-floor",
        type=float,
        default=0.0,
        help="least half-width of the band in the series' unit (default 0; set it for a "
        "series that sits at 0, such as an error ratio)",
    )
    p.add_argument("--format", default="table", choices=["table", "json"], help="output format")
    p.add_argument(
        "--fail-on-anomaly",
        action="store_true",
        help="exit 1 (instead of 0) when the series has an anomaly, for CI pipelines",
    )


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        default=None,
        help="watch this namespace (repeatable; globs allowed); default from WATCH_NAMESPACES",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch the whole cluster"
    )
    p.add_argument("--log-format", choices=["text", "json"], default=None, help="log format")
    p.add_argument("--log-level", default=None, help="log level (DEBUG, INFO, WARNING, ...)")
    p.add_argument("--metrics-port", type=int, default=None, help="Prometheus metrics port")
    p.add_argument("--health-port", type=int, default=None, help="liveness/readiness port")
    p.add_argument(
        "--payload-port", type=int, default=None, help="payload-log (CloudEvents) collector port"
    )
    p.add_argument(
        "--standalone", action="store_true", help="no leader election (one replica only)"
    )


_UNITS = {"": 1, "k": 1000, "ki": 1 << 10, "m": 10**6, "mi": 1 << 20, "g": 10**9, "gi": 1 << 30}
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?)?\s*$", re.IGNORECASE)


def size_argument(text: str) -> int:
    """An argparse type: a positive size such as ``1000000``, ``256Mi`` or ``1Gi``."""
    match = _SIZE.match(text)
    if not match or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive size (e.g. 5000000, 256Mi, 1Gi)"
        )
    return int(match.group(1)) * _UNITS[(match.group(2) or "").lower()]


def add_limit_arguments(p: argparse.ArgumentParser) -> None:
    """``--max-decoded-bytes``, ``--max-rows``, ``--max-cells`` with the defaults."""
    d = ReadLimits()
    p.add_argument(
        "--max-decoded-bytes",
        type=size_argument,
        default=d.max_decoded_bytes,
        metavar="SIZE",
        help="refuse an input that decompresses or decodes to more bytes (default 1Gi; "
        "gzip/bz2 inputs are inflated as a stream and refused as soon as they pass it)",
    )
    p.add_argument(
        "--max-rows",
        type=size_argument,
        default=d.max_rows,
        metavar="N",
        help=f"refuse an input with more rows (default {d.max_rows:,})",
    )
    p.add_argument(
        "--max-cells",
        type=size_argument,
        default=d.max_cells,
        metavar="N",
        help=f"refuse an input with more rows x columns read (default {d.max_cells:,})",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = cast(Handler, args.handler)
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
