//! The deploy artefacts in `deploy/` against the code: every metric name that
//! an alert rule or the dashboard uses exists in `src/observe.rs` (and, with
//! a real Prometheus, in what it scrapes from a running gateway); the
//! Kubernetes configs load with the current config schema and agree with the
//! Deployment around them; the ServiceMonitor finds the admin Service.

mod utils;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use trustgate::config::Config;
use utils::*;

fn deploy(rel: &str) -> PathBuf {
    root().join("deploy").join(rel)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(path: &Path) -> Yaml {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_docs(path: &Path) -> Vec<Yaml> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(&read(path))
        .map(|d| Yaml::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// Every `trustgate_*` word in `text`: a metric name, or a prefix of one
/// followed by a Grafana/PromQL character. Recording-rule names
/// (`trustgate:...`) and names inside longer words are not matched.
fn metric_words(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut out = BTreeSet::new();
    let mut i = 0;
    while let Some(off) = text[i..].find("trustgate_") {
        let start = i + off;
        let mut end = start + "trustgate_".len();
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if start == 0 || !is_word(bytes[start - 1]) {
            out.insert(text[start..end].to_string());
        }
        i = end;
    }
    out
}

/// The files whose metric names must exist: the Prometheus configs, alert
/// rules and their unit tests, and the Grafana dashboard.
fn referencing_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy("prometheus"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "yml" || e == "yaml" || e == "json")
        })
        .collect();
    files.push(deploy("grafana/dashboard.json"));
    files.sort();
    files
}

/// Metric names referenced by `deploy/`, by file.
fn referenced_metrics() -> BTreeMap<String, BTreeSet<String>> {
    let mut by_name: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in referencing_files() {
        let rel = f.strip_prefix(root()).unwrap().display().to_string();
        for w in metric_words(&read(&f)) {
            by_name.entry(w).or_default().insert(rel.clone());
        }
    }
    by_name
}

/// Metric names the code registers: the string literals in src/observe.rs.
fn code_metrics() -> BTreeSet<String> {
    let text = read(&root().join("src/observe.rs"));
    metric_words(&text)
        .into_iter()
        .filter(|w| text.contains(&format!("\"{w}\"")))
        .collect()
}

/// The registered metric a referenced name belongs to: itself, or the
/// histogram it is a `_bucket`, `_sum` or `_count` series of.
fn registered_base<'a>(name: &'a str, code: &BTreeSet<String>) -> Option<&'a str> {
    if code.contains(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|s| name.strip_suffix(s))
        .find(|base| code.contains(*base))
}

#[test]
fn every_metric_in_alerts_and_dashboard_is_registered_in_the_code() {
    let code = code_metrics();
    assert!(code.len() >= 20, "found only {code:?} in src/observe.rs");
    let referenced = referenced_metrics();
    assert!(
        referenced.len() >= 20,
        "suspiciously few names in deploy/: {referenced:?}"
    );
    let unknown: Vec<String> = referenced
        .iter()
        .filter(|(name, _)| registered_base(name, &code).is_none())
        .map(|(name, files)| format!("{name} (in {files:?})"))
        .collect();
    assert!(
        unknown.is_empty(),
        "deploy/ references metrics that src/observe.rs does not register:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn metric_words_finds_names_and_skips_recording_rules() {
    let w = metric_words(
        "rate(trustgate_requests_total{app=\"x\"}[5m]) trustgate:ratio x_trustgate_no \
         histogram_quantile(0.9, trustgate_request_duration_seconds_bucket)",
    );
    assert_eq!(
        w.into_iter().collect::<Vec<_>>(),
        [
            "trustgate_request_duration_seconds_bucket",
            "trustgate_requests_total"
        ]
    );
}

fn rules(path: &Path) -> Vec<Yaml> {
    let doc = yaml(path);
    doc["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules").clone())
        .collect()
}

#[test]
fn alert_rules_cover_what_operators_must_know() {
    let rules = rules(&deploy("prometheus/alerts.yml"));
    let mut names = BTreeSet::new();
    for r in &rules {
        let name = r["alert"].as_str().expect("every rule is an alert");
        assert!(names.insert(name.to_string()), "duplicate alert {name}");
        assert!(
            matches!(
                r["labels"]["severity"].as_str(),
                Some("critical" | "warning" | "info")
            ),
            "{name}: severity"
        );
        for a in ["summary", "description"] {
            assert!(
                r["annotations"][a].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: annotations.{a}"
            );
        }
    }
    // The issue's list: deny or verification-failure spikes, upstream
    // errors, certificate expiry within 14 days, reload failures, not
    // ready, a drop in the cache hit ratio.
    let expr_of = |needle: &str| -> Vec<String> {
        rules
            .iter()
            .map(|r| r["expr"].as_str().unwrap().to_string())
            .filter(|e| e.contains(needle))
            .collect()
    };
    assert!(!expr_of("trustgate_decisions_total{action=\"deny\"}").is_empty());
    assert!(!expr_of("trustgate_assertions_total{result!=\"accept\"}").is_empty());
    assert!(!expr_of("trustgate_upstream_errors_total").is_empty());
    assert!(expr_of("trustgate_certificate_expiry_timestamp_seconds")
        .iter()
        .any(|e| e.contains("14 * 86400")));
    assert!(!expr_of("trustgate_config_reloads_total{result=\"failure\"}").is_empty());
    assert!(!expr_of("trustgate_ready == 0").is_empty());
    assert!(!expr_of("trustgate_decision_cache_misses_total").is_empty());

    // The promtool unit tests load these rules.
    let tests = yaml(&deploy("prometheus/alerts.test.yml"));
    assert_eq!(tests["rule_files"][0].as_str(), Some("alerts.yml"));
}

fn dashboard() -> Json {
    serde_json::from_str(&read(&deploy("grafana/dashboard.json"))).expect("dashboard.json")
}

/// Every PromQL expression on the dashboard.
fn dashboard_exprs(d: &Json) -> Vec<String> {
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn dashboard_is_well_formed_and_covers_each_area() {
    let d = dashboard();
    assert_eq!(d["uid"], "trustgate-overview");
    let vars: BTreeSet<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for v in ["datasource", "job", "instance", "app"] {
        assert!(vars.contains(v), "template variable {v}");
    }
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        let title = p["title"].as_str().unwrap();
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "{title}: duplicate id"
        );
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24, "{title}: wider than the grid");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "{title}: overlaps another panel");
            }
        }
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert!(refs.insert(t["refId"].as_str().unwrap()), "{title}: refId");
            let expr = t["expr"].as_str().unwrap();
            assert!(
                expr.contains("trustgate_") || expr.contains("process_"),
                "{title}: {expr}"
            );
            // Every variable used is defined (or one of Grafana's own).
            for (i, _) in expr.match_indices('$') {
                let name: String = expr[i + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    vars.contains(name.as_str()) || name.starts_with("__"),
                    "{title}: undefined ${name}"
                );
            }
        }
    }
    let all = dashboard_exprs(&d).join("\n");
    for (area, needle) in [
        ("traffic", "trustgate_requests_total"),
        (
            "decisions by action",
            "sum by (action) (rate(trustgate_decisions_total",
        ),
        (
            "decisions by platform",
            "sum by (platform) (rate(trustgate_decisions_total",
        ),
        (
            "verification results",
            "sum by (result) (rate(trustgate_assertions_total",
        ),
        (
            "verification latency",
            "trustgate_assertion_verify_duration_seconds_bucket",
        ),
        (
            "detours",
            "sum by (event) (rate(trustgate_enrollment_detours_total",
        ),
        ("cache", "trustgate_decision_cache_hits_total"),
        ("cache entries", "trustgate_decision_cache_entries"),
        ("upstream health", "trustgate_upstream_errors_total"),
        (
            "upstream latency",
            "trustgate_upstream_duration_seconds_bucket",
        ),
        (
            "certificate expiry",
            "trustgate_certificate_expiry_timestamp_seconds",
        ),
    ] {
        assert!(all.contains(needle), "dashboard lacks {area} ({needle})");
    }
}

/// The `config.toml=` literal of the `trustgate-config` configMapGenerator
/// in a kustomization.
fn kustomize_config(kustomization: &Path) -> String {
    let k = yaml(kustomization);
    let gen = k["configMapGenerator"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "trustgate-config")
        .expect("trustgate-config generator");
    let lit = gen["literals"][0].as_str().unwrap();
    lit.strip_prefix("config.toml=")
        .expect("config.toml= literal")
        .to_string()
}

/// Loads a pod's config.toml as the pod would see it: /etc/trustgate/ is
/// laid out in a temporary folder with the TEST-ONLY certificate and a
/// session key where the Secrets are mounted.
fn load_in_pod_layout(text: &str) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc/trustgate");
    for sub in ["config", "tls", "session", "idp", "redis", "uem"] {
        std::fs::create_dir_all(etc.join(sub)).unwrap();
    }
    std::fs::copy(root().join("certs/demo-idp.pem"), etc.join("idp/okta.pem")).unwrap();
    std::fs::write(etc.join("redis/url"), "redis://127.0.0.1:1/0").unwrap();
    std::fs::write(etc.join("uem/password"), "uem-password-0123456789").unwrap();
    std::fs::copy(root().join("certs/localhost.pem"), etc.join("tls/tls.crt")).unwrap();
    std::fs::copy(root().join("certs/localhost.key"), etc.join("tls/tls.key")).unwrap();
    std::fs::write(etc.join("session/key"), [7u8; 48]).unwrap();
    let text = text.replace("/etc/trustgate/", &format!("{}/", etc.display()));
    let path = etc.join("config/config.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap_or_else(|e| panic!("config.toml in the pod:\n{e}"))
}

fn container<'a>(deployment: &'a Yaml, name: &str) -> &'a Yaml {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("container {name}"))
}

fn port_named(c: &Yaml, name: &str) -> u16 {
    c["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("port {name}"))["containerPort"]
        .as_u64()
        .unwrap() as u16
}

#[test]
fn kubernetes_base_config_loads_and_matches_its_deployment() {
    let config = load_in_pod_layout(&kustomize_config(&deploy(
        "kubernetes/base/kustomization.yaml",
    )));
    assert_eq!(config.certificates.len(), 1);
    assert_eq!(config.session_keys.len(), 1, "replicas share a session key");

    let d = yaml(&deploy("kubernetes/base/deployment.yaml"));
    let c = container(&d, "trustgate");
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        ["run", "--config", "/etc/trustgate/config/config.toml"]
    );
    let mounts: BTreeSet<&str> = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    for m in [
        "/etc/trustgate/config",
        "/etc/trustgate/tls",
        "/etc/trustgate/session",
    ] {
        assert!(mounts.contains(m), "mount {m}");
    }
    assert_eq!(
        Some(port_named(c, "https")),
        config.server.listen.map(|a| a.port())
    );
    assert_eq!(port_named(c, "admin"), config.admin_listen.port());
    assert!(
        config.admin_listen.ip().is_unspecified(),
        "probes and Prometheus reach the pod IP"
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["startupProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"], "admin", "{probe}");
    }
    let pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap();
    let termination = d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(
        termination > pre_stop + config.server.grace_period.as_secs(),
        "terminationGracePeriodSeconds {termination} must exceed preStop {pre_stop}s + grace_period {:?}",
        config.server.grace_period
    );
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        d["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );
}

#[test]
fn kubernetes_sidecar_config_loads_and_forwards_over_localhost() {
    let patch = yaml(&deploy("kubernetes/components/sidecar/sidecar.yaml"));
    let c = container(&patch, "trustgate");
    for app in ["app-a", "app-b"] {
        let dir = deploy(&format!("kubernetes/overlays/sidecar/{app}"));
        let config = load_in_pod_layout(&read(&dir.join("config.toml")));
        assert!(config.server.listen.is_none() && config.certificates.is_empty());
        let plain = config.server.plain_listen.expect("plain_listen");
        assert_eq!(port_named(c, "trustgate-http"), plain.port());
        assert_eq!(port_named(c, "trustgate-admin"), config.admin_listen.port());
        assert_eq!(config.apps.len(), 1);
        assert!(
            config.apps[0].enforcement.is_some(),
            "{app} enforces device trust"
        );
        assert!(
            config.redis.is_some() && config.uem.is_some(),
            "{app}: a fleet"
        );
        assert_eq!(config.apps[0].upstream_authority.as_str(), "127.0.0.1:8081");
        let k = read(&dir.join("kustomization.yaml"));
        assert!(
            k.contains("listen 127.0.0.1:8081;"),
            "the app binds loopback"
        );
        assert!(
            k.contains(&format!("namePrefix: {app}-")),
            "{app}: names of its own"
        );
        assert!(read(&dir.join("app.yaml")).contains("targetPort: trustgate-http"));
    }
}

/// Every Kubernetes config enforces device trust as a fleet: an app with a
/// pinned IdP certificate, a policy and an enrollment link, Redis, and the
/// UEM's secret.
#[test]
fn kubernetes_configs_enforce_device_trust_as_a_fleet() {
    let base = load_in_pod_layout(&kustomize_config(&deploy(
        "kubernetes/base/kustomization.yaml",
    )));
    let enf = base.apps[0]
        .enforcement
        .as_ref()
        .expect("the base app enforces");
    assert!(enf.enrollment.is_some());
    assert!(!enf.idp_certs.is_empty());
    assert!(base.redis.is_some() && base.uem.is_some());
    let d = yaml(&deploy("kubernetes/base/deployment.yaml"));
    let mounts: BTreeSet<&str> = container(&d, "trustgate")["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    for m in [
        "/etc/trustgate/idp",
        "/etc/trustgate/redis",
        "/etc/trustgate/uem",
    ] {
        assert!(mounts.contains(m), "mount {m}");
    }
    let edge = read(&deploy("kubernetes/overlays/edge/kustomization.yaml"));
    assert!(edge.contains("url=redis://trustgate-redis:6379/0"));
    assert!(read(&deploy("kubernetes/overlays/edge/redis.yaml")).contains("FOR TRYING ONLY"));
}

#[test]
fn servicemonitor_and_scrape_config_find_the_admin_port() {
    let sm = yaml(&deploy("prometheus/servicemonitor.yaml"));
    let services = yaml_docs(&deploy("kubernetes/base/service.yaml"));
    let kustomization = yaml(&deploy("kubernetes/base/kustomization.yaml"));
    let common = &kustomization["labels"][0]["pairs"];
    let admin = services
        .iter()
        .find(|s| s["metadata"]["name"] == "trustgate-admin")
        .expect("trustgate-admin Service");
    let selector = sm["spec"]["selector"]["matchLabels"].as_mapping().unwrap();
    for (k, v) in selector {
        let own = &admin["metadata"]["labels"][k.as_str().unwrap()];
        let added = &common[k.as_str().unwrap()];
        assert!(
            own == v || added == v,
            "ServiceMonitor selects {k:?}={v:?}, which the admin Service lacks"
        );
    }
    let port = sm["spec"]["endpoints"][0]["port"].as_str().unwrap();
    assert!(admin["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|p| p["name"] == port));
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    // Without the operator: the pod job keeps the container port "admin".
    let k8s = read(&deploy("prometheus/prometheus-kubernetes.yml"));
    assert!(k8s.contains("__meta_kubernetes_pod_container_port_name]\n        regex: admin"));
}

#[test]
fn systemd_unit_and_dockerfile_fit_the_gateway() {
    let unit = read(&deploy("systemd/trustgate.service"));
    let value = |key: &str| -> Vec<&str> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .collect()
    };
    assert_eq!(value("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    assert_eq!(value("DynamicUser"), ["yes"]);
    assert_eq!(value("ProtectSystem"), ["strict"]);
    assert_eq!(value("NoNewPrivileges"), ["yes"]);
    assert_eq!(value("AmbientCapabilities"), ["CAP_NET_BIND_SERVICE"]);
    assert_eq!(value("CapabilityBoundingSet"), ["CAP_NET_BIND_SERVICE"]);
    let stop: u64 = value("TimeoutStopSec")[0]
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!(
        stop > 30,
        "TimeoutStopSec must exceed the default grace_period"
    );

    let docker = read(&deploy("Dockerfile"));
    assert!(docker.contains("cargo build --release --locked --bin trustgate"));
    assert!(docker.contains("USER 65532:65532"));
    assert!(docker.contains(
        r#"CMD ["/usr/local/bin/trustgate", "healthcheck", "--url", "http://127.0.0.1:9901/healthz"]"#
    ));
    assert!(docker.contains("FROM gcr.io/distroless/cc-debian12:nonroot"));
    assert!(docker.contains("CARGO_PROFILE_RELEASE_STRIP=symbols"));
    assert!(!docker.contains("curl"), "the image has no curl");
}

// ---------------------------------------------------------------------------
// Live: a real Prometheus scrapes a running gateway.

/// Kills the child (Prometheus) when dropped, also on panic.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One Prometheus HTTP API call: the status and the body.
async fn api_call(prom: SocketAddr, path: &str, query: &[(&str, &str)]) -> (StatusCode, String) {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(query)
        .finish();
    let url = format!("http://{prom}{path}?{q}");
    let resp = plain_client()
        .request(Request::get(url).body(full("")).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = resp.status();
    (status, body_string(resp).await)
}

async fn api(prom: SocketAddr, path: &str, query: &[(&str, &str)]) -> Json {
    let (status, body) = api_call(prom, path, query).await;
    assert_eq!(status, StatusCode::OK, "{path} {query:?}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Drives the traffic that makes the labelled series appear.
async fn drive_traffic(gw: &TestGateway, limited: &TestGateway) {
    let client = https_client(false);
    for _ in 0..3 {
        let resp = client
            .request(Request::get(gw.https("/")).body(full("")).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        body_string(resp).await;
    }
    // Unknown host: a gateway error page.
    let resp = client
        .request(
            Request::get(gw.https("/"))
                .header("host", "unknown.test")
                .body(full(""))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // An app whose upstream is down: upstream error, 502.
    let resp = client
        .request(
            Request::get(gw.https("/"))
                .header("host", "down.test")
                .body(full(""))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    // Plain HTTP to the TLS port: a failed handshake.
    let mut tcp = TcpStream::connect(gw.tls_addr()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    // A refused reload, then a good one.
    let good = read(&gw.config_path);
    std::fs::write(&gw.config_path, "[server]\nlisten = 1\n").unwrap();
    assert!(gw.running().reload().is_err());
    std::fs::write(&gw.config_path, good).unwrap();
    gw.running().reload().unwrap();
    // Over max_connections on the second gateway: a refused connection.
    let mut first = TcpStream::connect(limited.plain_addr()).await.unwrap();
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    assert!(first.read(&mut buf).await.unwrap() > 0);
    let mut second = TcpStream::connect(limited.plain_addr()).await.unwrap();
    let _ = second
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), second.read_to_end(&mut rest)).await;
    drop(first);
}

/// Grafana's variables replaced so the expression runs in Prometheus.
fn without_grafana_vars(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        .replace("$job", ".*")
        .replace("$instance", ".*")
        .replace("$app", ".*")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs prometheus"]
async fn prometheus_scrapes_every_metric_that_alerts_and_dashboard_use() {
    let prometheus = std::env::var("PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
    let up = Upstream::echo_headers().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    // Plus an enforced app, so that the per-app enforcement series exist.
    let apps = format!(
        "{}[apps.down]\nhosts = [\"down.test\"]\nupstream = {down:?}\n\
         [session]\nkeys = [\"deploy-test-session-key-0123456789abcdef\"]\n\
         [redis]\nurl = \"redis://127.0.0.1:1/\"\n\
         [uem]\nusername = \"uem\"\npassword = \"uem-password-0123\"\nsubject_template = \"{{user}}\"\n\
         [apps.sso]\nhosts = [\"sso.test\"]\nupstream = {:?}\nenforce = \"session\"\n\
         [apps.sso.idp]\nentity_id = \"http://idp.test/\"\ncerts = [{:?}]\n\
         [apps.sso.sp]\nentity_id = \"https://sso.test/sp\"\nacs_url = \"https://sso.test/saml/acs\"\n",
        app(&up.url()),
        up.url(),
        root().join("certs/demo-idp.pem"),
    );
    let gw = TestGateway::start("", &apps).await;
    let limited = TestGateway::start("max_connections = 1", &app(&up.url())).await;
    drive_traffic(&gw, &limited).await;

    let dir = tempfile::tempdir().unwrap();
    let targets: Vec<String> = [&gw, &limited]
        .iter()
        .map(|g| format!("'{}'", g.running().admin_addr))
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: trustgate\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let port = free_port();
    let prom: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let child = Command::new(&prometheus)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={prom}"))
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {prometheus}: {e} (apt-get install prometheus)"));
    let _guard = KillOnDrop(child);
    let prom_log =
        || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    // Bounded wait: Prometheus answers, and both targets have been scraped.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "targets not up within 60 s; prometheus log:\n{}",
            prom_log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let ready = plain_client()
            .request(
                Request::get(format!("http://{prom}/-/ready"))
                    .body(full(""))
                    .unwrap(),
            )
            .await;
        if !matches!(ready, Ok(ref r) if r.status() == StatusCode::OK) {
            continue;
        }
        let t = api(prom, "/api/v1/targets", &[("state", "active")]).await;
        let active = t["data"]["activeTargets"].as_array().unwrap();
        if active.len() == 2 && active.iter().all(|t| t["health"] == "up") {
            break;
        }
    }

    let t = api(prom, "/api/v1/targets", &[("state", "active")]).await;
    for target in t["data"]["activeTargets"].as_array().unwrap() {
        assert_eq!(target["health"], "up", "{target}");
        assert_eq!(target["labels"]["job"], "trustgate");
    }

    // Every name deploy/ uses, once a scrape has brought it in: polled until
    // none is missing or 15 s have passed (a few scrape rounds), then judged.
    let code = code_metrics();
    let start = std::time::Instant::now();
    let missing = loop {
        let names = api(prom, "/api/v1/label/__name__/values", &[]).await;
        let scraped: BTreeSet<String> = names["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect();
        let mut missing = Vec::new();
        for (name, files) in referenced_metrics() {
            // A histogram named without a suffix is there when its _count is.
            let probe = match registered_base(&name, &code) {
                Some(base) if base == name && !scraped.contains(&name) => {
                    format!("{name}_count")
                }
                _ => name.clone(),
            };
            if !scraped.contains(&probe) {
                missing.push(format!("{name} (in {files:?})"));
            }
        }
        if missing.is_empty() || start.elapsed() > Duration::from_secs(15) {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Every alert and dashboard expression parses and runs in Prometheus.
    let mut exprs: Vec<String> = rules(&deploy("prometheus/alerts.yml"))
        .iter()
        .map(|r| r["expr"].as_str().unwrap().to_string())
        .collect();
    exprs.extend(
        dashboard_exprs(&dashboard())
            .iter()
            .map(|e| without_grafana_vars(e)),
    );
    let mut bad = Vec::new();
    for e in &exprs {
        let (status, body) = api_call(prom, "/api/v1/query", &[("query", e.as_str())]).await;
        if status != StatusCode::OK || !body.contains("\"status\":\"success\"") {
            bad.push(format!("{e}: {status} {body}"));
        }
    }
    assert!(
        bad.is_empty(),
        "queries Prometheus refused:\n{}",
        bad.join("\n")
    );
    assert!(
        missing.is_empty(),
        "{} metric names that deploy/ uses were not in what Prometheus scraped \
         (labelled series appear once a label combination is used):\n{}",
        missing.len(),
        missing.join("\n")
    );
}

/// `name{label="value",...}` selectors in a PromQL expression: the metric
/// and its equality matchers (`=~`, `!=` and `!~` are left out, they need
/// no particular series).
fn selectors(expr: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    for name in metric_words(expr) {
        let mut from = 0;
        while let Some(off) = expr[from..].find(&name) {
            let at = from + off + name.len();
            from = at;
            let next = expr.as_bytes().get(at).copied();
            if next.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
                continue;
            }
            let mut matchers = Vec::new();
            if next == Some(b'{') {
                let end = expr[at..].find('}').map_or(expr.len(), |e| at + e);
                for m in expr[at + 1..end].split(',') {
                    if let Some((k, v)) = m.split_once('=') {
                        let (k, v) = (k.trim(), v.trim());
                        if k.ends_with('!') || v.starts_with('~') {
                            continue;
                        }
                        matchers.push((k.to_string(), v.trim_matches('"').to_string()));
                    }
                }
            }
            out.push((name.clone(), matchers));
        }
    }
    out
}

/// An enforced app, so that the per-app series exist.
fn enforced_app(upstream: &str) -> String {
    format!(
        "[session]\nkeys = [\"deploy-test-session-key-0123456789abcdef\"]\n\
         [redis]\nurl = \"redis://127.0.0.1:1/\"\n\
         [uem]\nusername = \"uem\"\npassword = \"uem-password-0123\"\nsubject_template = \"{{user}}\"\n\
         [apps.mail]\nhosts = [\"localhost\"]\nupstream = {upstream:?}\n\
         enrollment_url = \"https://uem.example/enroll/welcome\"\n\
         [apps.mail.idp]\nentity_id = \"http://idp/\"\ncerts = [{:?}]\n\
         [apps.mail.sp]\nentity_id = \"https://mail/sp\"\nacs_url = \"https://localhost/saml/acs\"\n",
        root().join("certs/demo-idp.pem")
    )
}

/// `rate()` and `increase()` miss the first event of a series that does not
/// exist yet: every series an alert selects is in the first scrape of a
/// gateway that has served nothing.
#[tokio::test]
async fn every_series_an_alert_names_exists_in_a_fresh_scrape() {
    let gw = TestGateway::start("", &enforced_app("http://127.0.0.1:9")).await;
    let scrape = gw.metrics().await;
    let series: Vec<&str> = scrape.lines().filter(|l| !l.starts_with('#')).collect();
    // The process metrics the dashboard's Process row shows.
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        let value = series
            .iter()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok());
        assert!(value.is_some(), "{name} in {scrape}");
    }
    let mut missing = Vec::new();
    let mut checked = 0;
    for rule in rules(&deploy("prometheus/alerts.yml")) {
        let alert = rule["alert"].as_str().unwrap().to_string();
        for (name, matchers) in selectors(rule["expr"].as_str().unwrap()) {
            checked += 1;
            let found = series.iter().any(|line| {
                let Some(rest) = line.strip_prefix(name.as_str()) else {
                    return false;
                };
                let labels = match rest.chars().next() {
                    Some('{') => &rest[..rest.find('}').unwrap_or(rest.len())],
                    Some(' ') => "",
                    _ => return false,
                };
                matchers
                    .iter()
                    .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")))
            });
            if !found {
                missing.push(format!("{alert}: {name}{matchers:?}"));
            }
        }
    }
    assert!(checked >= 15, "only {checked} selectors found");
    assert!(
        missing.is_empty(),
        "series absent from a fresh scrape:\n{}\n--- scrape:\n{scrape}",
        missing.join("\n")
    );
}

/// The reasons that alert texts and dashboard descriptions name are the
/// code's: a cookie reason from the cookie list, an assertion reason from
/// the verifier's, anything else from the gateway's error table; snake_case
/// words that are no reason are metric names or config keys.
#[test]
fn reasons_named_in_alerts_and_dashboard_are_the_codes() {
    let cookie: &[&str] = &trustgate::remember::sessions::SessionReject::REASONS;
    let assertion: &[&str] = &trustgate::evidence::assertion::AssertionError::REASONS;
    let gateway: &[&str] = &trustgate::answer::GatewayError::REASONS;
    let readme = read(&root().join("README.md"));
    let code = code_metrics();
    let mut texts: Vec<String> = rules(&deploy("prometheus/alerts.yml"))
        .iter()
        .flat_map(|r| {
            ["summary", "description"]
                .into_iter()
                .filter_map(|a| r["annotations"][a].as_str().map(str::to_string))
        })
        .collect();
    fn descriptions(v: &Json, out: &mut Vec<String>) {
        match v {
            Json::Object(m) => {
                for (k, v) in m {
                    if k == "description" {
                        if let Some(s) = v.as_str() {
                            out.push(s.to_string());
                        }
                    }
                    descriptions(v, out);
                }
            }
            Json::Array(a) => a.iter().for_each(|v| descriptions(v, out)),
            _ => {}
        }
    }
    descriptions(&dashboard(), &mut texts);
    let mut wrong = Vec::new();
    let mut reasons_seen = 0;
    for text in &texts {
        let lower = text.to_ascii_lowercase();
        let (family, list) = if lower.contains("cookie") {
            ("cookie", cookie)
        } else if lower.contains("assertion") || lower.contains("verification") {
            ("assertion", assertion)
        } else {
            ("gateway", gateway)
        };
        for word in text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| {
                w.contains('_')
                    && w.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
        {
            if word.starts_with("process_") {
                // The prometheus crate's process collector.
            } else if word.starts_with("trustgate_") {
                if registered_base(word, &code).is_none() {
                    wrong.push(format!("{word}: no such metric, in {text:?}"));
                }
            } else if readme.contains(&format!("`{word}`"))
                && !list.contains(&word)
                && !cookie.contains(&word)
                && !assertion.contains(&word)
                && !gateway.contains(&word)
            {
                // A config key the README documents.
            } else if list.contains(&word) {
                reasons_seen += 1;
            } else {
                wrong.push(format!("{word}: not a {family} reason, in {text:?}"));
            }
        }
    }
    assert!(reasons_seen >= 2, "the texts name reasons: {texts:?}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
