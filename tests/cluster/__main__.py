"""`python -m tests.cluster up|down|status [--name NAME]`: manage a local control plane."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tests.cluster.controlplane import ControlPlane, eprint
from tests.cluster.state import ClusterError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.cluster",
        description="Run a real Kubernetes control plane (etcd, kube-apiserver, "
        "kube-controller-manager, kube-scheduler) on loopback for development and tests.",
    )
    # --name/--state-root are accepted before or after the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", default=argparse.SUPPRESS, help="cluster name (default: default)")
    common.add_argument(
        "--state-root",
        type=Path,
        default=argparse.SUPPRESS,
        help="parent of the per-cluster state directories "
        "(default: $MODELMONITOR_CLUSTER_DIR or <repo>/.state/cluster)",
    )
    parser.add_argument("--name", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--state-root", type=Path, default=None, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser(
        "up", parents=[common], help="start the cluster (or reuse it); print its kubeconfig path"
    )
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for health")
    down = sub.add_parser("down", parents=[common], help="stop the cluster and remove its state")
    down.add_argument("--keep", action="store_true", help="keep the state directory and logs")
    sub.add_parser("status", parents=[common], help="say whether the cluster is up")
    sub.add_parser(
        "kubeconfig",
        parents=[common],
        help="print the kubeconfig path of a running cluster (exit 1 when it is not up)",
    )
    args = parser.parse_args(argv)

    plane = ControlPlane(args.name, state_root=args.state_root)
    try:
        if args.command == "up":
            before = plane.status()
            t0 = time.monotonic()
            state = plane.up(timeout=args.timeout)
            if before.up:
                eprint(f"cluster {args.name!r} already up at {state.server}")
            else:
                eprint(
                    f"cluster {args.name!r} up at {state.server} "
                    f"in {time.monotonic() - t0:.1f}s (logs: {plane.logs_dir})"
                )
                stages = ", ".join(f"{k} {v:.1f}s" for k, v in state.stages.items())
                eprint(f"  healthy after: {stages}")
            eprint(f"  export KUBECONFIG={state.kubeconfig}")
            print(state.kubeconfig)
            return 0
        if args.command == "down":
            was = plane.down(keep=args.keep)
            eprint(f"cluster {args.name!r} {'stopped' if was else 'was not running'}")
            return 0
        status = plane.status()
        if args.command == "kubeconfig":
            if not status.up or status.state is None:
                eprint(status.describe())
                return 1
            print(status.state.kubeconfig)
            return 0
        print(status.describe())
        return 0
    except ClusterError as exc:
        eprint(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
