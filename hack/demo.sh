#!/usr/bin/env bash
# The no-cluster demo: a real local control plane, the operator running against it,
# an example ModelMonitor applied and its status shown, then everything shut down.
# Needs nothing but this repository (make demo installs the rest).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
NAME=demo
NS=demo
STATE=.state/demo
mkdir -p "$STATE"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

cleanup() {
  local rc=$?
  if [[ -n "${OP_PID:-}" ]] && kill -0 "$OP_PID" 2>/dev/null; then
    kill "$OP_PID" 2>/dev/null || true
    wait "$OP_PID" 2>/dev/null || true
  fi
  $PY -m tests.cluster --name "$NAME" down >/dev/null 2>&1 || true
  if [[ $rc -ne 0 ]]; then
    echo "demo failed (exit $rc); operator log: $STATE/operator.log" >&2
  fi
  exit $rc
}
trap cleanup EXIT INT TERM

step "Starting a local Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler)"
KUBECONFIG="$($PY -m tests.cluster --name "$NAME" up --timeout 180)"
export KUBECONFIG
k() { kubectl --kubeconfig "$KUBECONFIG" "$@"; }

step "Installing the CustomResourceDefinitions"
k apply --server-side -f crds/ >/dev/null
k wait --for=condition=Established --timeout=60s crd/modelmonitors.modelmonitor.io >/dev/null

step "Creating namespace $NS with a model Deployment, its Service and the reference data"
k create namespace "$NS" --dry-run=client -o yaml | k apply -f - >/dev/null
k -n "$NS" create configmap iris-reference \
  --from-file=reference.csv=docs/examples/data/iris-reference.csv --dry-run=client -o yaml | k apply -f - >/dev/null
k -n "$NS" create deployment iris-model --image=iris-model:v1 --port=8080 --dry-run=client -o yaml | k apply -f - >/dev/null
k -n "$NS" create service clusterip iris-model --tcp=8080:8080 --dry-run=client -o yaml | k apply -f - >/dev/null

step "Starting the operator: modelmonitor run --namespace $NS"
METRICS_PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HEALTH_PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PAYLOAD_PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
.venv/bin/modelmonitor run --namespace "$NS" --metrics-port "$METRICS_PORT" \
  --health-port "$HEALTH_PORT" --payload-port "$PAYLOAD_PORT" >"$STATE/operator.log" 2>&1 &
OP_PID=$!
for _ in $(seq 1 60); do
  curl -fsS "http://127.0.0.1:$HEALTH_PORT/healthz" >/dev/null 2>&1 && break
  kill -0 "$OP_PID" 2>/dev/null || { cat "$STATE/operator.log"; exit 1; }
  sleep 0.5
done
echo "operator healthy (metrics on :$METRICS_PORT/metrics, log $STATE/operator.log)"

step "Applying a ModelMonitor whose target does not exist yet"
sed 's/name: iris-model$/name: iris-model-v2/' docs/examples/minimal.yaml \
  | sed 's/^  name: iris$/  name: iris-v2/' | k -n "$NS" apply -f -
step "Applying docs/examples/minimal.yaml"
k -n "$NS" apply -f docs/examples/minimal.yaml

wait_reason() {  # name reason
  for _ in $(seq 1 60); do
    r=$(k -n "$NS" get mm "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}' 2>/dev/null || true)
    [[ "$r" == "$2" ]] && return 0
    sleep 0.5
  done
  echo "timed out waiting for $1 to report $2" >&2
  return 1
}
wait_reason iris Configured
wait_reason iris-v2 TargetNotFound

step "kubectl get modelmonitors"
k -n "$NS" get modelmonitors
step "Conditions of iris-v2"
k -n "$NS" get mm iris-v2 -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}'

step "Creating the missing Deployment: the monitor recovers by itself"
k -n "$NS" create deployment iris-model-v2 --image=iris-model:v2 >/dev/null
wait_reason iris-v2 Configured
k -n "$NS" get mm
step "Events"
k -n "$NS" get events --field-selector involvedObject.kind=ModelMonitor \
  -o custom-columns=OBJECT:.involvedObject.name,TYPE:.type,REASON:.reason,MESSAGE:.message

step "Shutting down"
