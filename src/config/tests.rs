use std::path::Path;

use super::*;

/// The shipped certs, reached from the crate root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(text, &root().join("config.toml"))
}

fn errors(text: &str) -> Vec<String> {
    parse(text)
        .expect_err("config should be refused")
        .0
        .iter()
        .map(|e| e.to_string())
        .collect()
}

/// A valid base; keys appended to it land in `[server]`.
const CERT: &str = r#"
[[tls.certificates]]
cert = "certs/localhost.pem"
key = "certs/localhost.key"
[server]
listen = "127.0.0.1:0"
"#;

#[test]
fn shipped_config_is_valid() {
    let c = Config::load(&root().join("config.toml")).unwrap();
    assert_eq!(c.apps.len(), 1);
    assert_eq!(
        c.certificates[0].server_names,
        vec!["localhost".to_string()]
    );
    assert!(c.demo.is_some());
}

/// The policy example in `decide/config.rs`'s docs, as written, loaded by
/// the real loader in place of the shipped config's own policy and zones:
/// the docs show a shape trustgate accepts.
#[test]
fn the_documented_policy_example_loads() {
    let example = crate::decide::tests::documented_example_as_written();
    let shipped = std::fs::read_to_string(root().join("config.toml")).unwrap();
    // The shipped config without its [zones] and the demo app's policy.
    let mut kept = String::new();
    let mut keep = true;
    for line in shipped.lines() {
        if line.starts_with('[') {
            let header = line.trim_start_matches('[');
            keep = !(header.starts_with("zones]") || header.starts_with("apps.demo.policy"));
        }
        if keep {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    let text = format!("{kept}\n{}\n", example.replace("apps.mail", "apps.demo"));
    let config = parse(&text).unwrap_or_else(|e| panic!("the documented example loads: {e}"));
    let policy = &config.apps[0].enforcement.as_ref().unwrap().policy;
    let names: Vec<&str> = policy.rules().iter().map(|r| r.name()).collect();
    assert_eq!(
        names,
        [
            "trusted mobile",
            "untrusted mobile",
            "trusted mac",
            "staff browsers on the corp network"
        ]
    );
}

#[test]
fn unknown_key_is_named_with_its_path() {
    let e = errors(&format!("{CERT}\nlistne = 1\n"));
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("server.listne:"), "{e:?}");
    assert!(e[0].contains("unknown field `listne`"), "{e:?}");
}

#[test]
fn cache_sizes_default_to_a_million_and_refuse_tiny_caches() {
    type Field = fn(&ServerConfig) -> u64;
    let cases: [(&str, Field, u64, u64); 2] = [
        (
            "decision_cache_entries",
            |s| s.decision_cache_entries,
            50_000,
            10,
        ),
        (
            "replay_cache_entries",
            |s| s.replay_cache_entries,
            20_000,
            999,
        ),
    ];
    for (key, field, fine, tiny) in cases {
        assert_eq!(field(&parse(CERT).unwrap().server), 1_000_000, "{key}");
        let c = parse(&format!("{CERT}\n{key} = {fine}\n")).unwrap();
        assert_eq!(field(&c.server), fine, "{key}");
        let e = errors(&format!("{CERT}\n{key} = {tiny}\n"));
        assert!(e[0].starts_with(&format!("server.{key}:")), "{e:?}");
    }
}

#[test]
fn worker_threads_defaults_to_the_runtime_and_refuses_zero() {
    assert_eq!(parse(CERT).unwrap().server.worker_threads, None);
    let c = parse(&format!("{CERT}\nworker_threads = 1\n")).unwrap();
    assert_eq!(c.server.worker_threads, Some(1));
    let e = errors(&format!("{CERT}\nworker_threads = 0\n"));
    assert!(e[0].starts_with("server.worker_threads:"), "{e:?}");
}

#[test]
fn runtime_is_per_core_unless_shared_and_names_a_wrong_value() {
    use crate::config::RuntimeKind;
    assert_eq!(parse(CERT).unwrap().server.runtime, RuntimeKind::PerCore);
    for (text, kind) in [
        ("per_core", RuntimeKind::PerCore),
        ("shared", RuntimeKind::Shared),
    ] {
        let c = parse(&format!("{CERT}\nruntime = \"{text}\"\n")).unwrap();
        assert_eq!(c.server.runtime, kind);
    }
    let e = errors(&format!("{CERT}\nruntime = \"threads\"\n"));
    assert!(
        e[0].contains("runtime") && e[0].contains("per_core") && e[0].contains("shared"),
        "{e:?}"
    );
    let c = parse(&format!("{CERT}\nworker_threads = 3\n")).unwrap();
    assert_eq!(c.server.serving_threads(), 3);
}

#[test]
fn upstream_timeouts_of_zero_are_refused() {
    for key in [
        "connect_timeout",
        "response_timeout",
        "pool_idle_timeout",
        "pool_park_after",
    ] {
        let e = errors(&format!("{CERT}\n[upstream]\n{key} = \"0s\"\n"));
        assert_eq!(
            e,
            [format!("upstream.{key}: must be longer than 0s")],
            "{key}"
        );
    }
}

#[test]
fn wrong_type_names_the_key() {
    let e = errors(&format!("{CERT}\nmax_connections = \"many\"\n"));
    assert!(e[0].starts_with("server.max_connections:"), "{e:?}");
}

#[test]
fn bad_duration_names_the_key() {
    let e = errors(&format!("{CERT}\nidle_timeout = \"10 parsecs\"\n"));
    assert!(e[0].starts_with("server.idle_timeout:"), "{e:?}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let e = errors(
        r#"
[server]
listen = "not an address"
max_connections = 0
[admin]
listen = "nowhere"
[apps.mail]
hosts = ["mail.example:443"]
upstream = "ftp://mail.internal"
[apps.wiki]
hosts = []
upstream = "http://wiki.internal/some/path"
host_header = "sometimes"
"#,
    );
    let joined = e.join("\n");
    for key in [
        "server.listen:",
        "server.max_connections:",
        "admin.listen:",
        "apps.mail.hosts[0]:",
        "apps.mail.upstream:",
        "apps.wiki.hosts:",
        "apps.wiki.upstream:",
        "apps.wiki.host_header:",
    ] {
        assert!(joined.contains(key), "missing {key} in:\n{joined}");
    }
}

#[test]
fn tls_listener_needs_a_certificate() {
    let e = errors("[server]\nlisten = \"127.0.0.1:0\"\n");
    assert!(e[0].starts_with("tls.certificates:"), "{e:?}");
}

#[test]
fn missing_certificate_file_is_named() {
    let e = errors("[server]\nlisten = \"127.0.0.1:0\"\n[[tls.certificates]]\ncert = \"certs/nope.pem\"\nkey = \"certs/localhost.key\"\n");
    assert!(e[0].starts_with("tls.certificates[0].cert:"), "{e:?}");
    assert!(e[0].contains("nope.pem"), "{e:?}");
}

#[test]
fn key_that_does_not_match_is_refused() {
    let e = errors("[server]\nlisten = \"127.0.0.1:0\"\n[[tls.certificates]]\ncert = \"certs/localhost.pem\"\nkey = \"certs/demo-idp.key\"\n");
    assert!(e[0].starts_with("tls.certificates[0].key:"), "{e:?}");
    assert!(e[0].contains("does not match"), "{e:?}");
}

#[test]
fn duplicate_route_is_refused() {
    let e = errors(&format!(
        "{CERT}\n[apps.a]\nhosts = [\"x.example\"]\nupstream = \"http://127.0.0.1:1\"\n\
         [apps.b]\nhosts = [\"X.example\"]\nupstream = \"http://127.0.0.1:2\"\n"
    ));
    assert!(e[0].starts_with("apps.b.hosts:"), "{e:?}");
}

#[test]
fn same_host_with_other_prefix_is_fine() {
    let c = parse(&format!(
        "{CERT}\n[apps.a]\nhosts = [\"x.example\"]\nupstream = \"http://127.0.0.1:1\"\n\
         [apps.b]\nhosts = [\"x.example\"]\npath_prefix = \"/b\"\nupstream = \"https://127.0.0.1:2\"\nhost_header = \"upstream\"\n"
    ))
    .unwrap();
    assert_eq!(c.apps[1].upstream_scheme, http::uri::Scheme::HTTPS);
    assert_eq!(c.apps[1].host_header, HostHeader::Upstream);
}

#[test]
fn secrets_come_from_env_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("session.key");
    std::fs::write(&key_file, format!("{}\n", "f".repeat(40))).unwrap();
    // The variable name is unique to this test; no other test reads it.
    std::env::set_var("TRUSTGATE_TEST_SESSION_KEY_A", "e".repeat(32));
    let c = parse(&format!(
        "{CERT}\n[session]\nkeys = [{{ env = \"TRUSTGATE_TEST_SESSION_KEY_A\" }}, {{ file = {:?} }}, \"{}\"]\n",
        key_file,
        "i".repeat(33)
    ))
    .unwrap();
    assert_eq!(c.session_keys[0].0, "e".repeat(32).into_bytes());
    assert_eq!(c.session_keys[1].0, "f".repeat(40).into_bytes());
    assert_eq!(c.session_keys[2].0, "i".repeat(33).into_bytes());
    // Debug output never shows a key.
    let debug = format!("{c:?}");
    assert!(!debug.contains(&"e".repeat(32)), "{debug}");
    assert!(debug.contains("redacted"));
}

#[test]
fn missing_or_short_secret_is_refused() {
    let e = errors(&format!(
        "{CERT}\n[session]\nkeys = [{{ env = \"TRUSTGATE_TEST_UNSET_VARIABLE\" }}, \"short\"]\n"
    ));
    assert!(
        e[0].starts_with("session.keys[0]:") && e[0].contains("not set"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("session.keys[1]:") && e[1].contains("32 bytes"),
        "{e:?}"
    );
}

#[test]
fn plain_only_needs_no_certificate() {
    let c = parse("[server]\nplain_listen = \"127.0.0.1:0\"\n").unwrap();
    assert!(c.server.listen.is_none());
    assert!(c.certificates.is_empty());
}

#[test]
fn no_listener_is_refused() {
    let e = errors("[server]\n");
    assert!(e[0].starts_with("server:"), "{e:?}");
}

#[test]
fn upgrades_refuse_http2_and_versions() {
    for (tokens, want) in [
        ("[\"h2c\"]", "apps.a.upgrades[0]: HTTP/2"),
        ("[\"websocket\", \"H2\"]", "apps.a.upgrades[1]: HTTP/2"),
        ("[\"HTTP/2.0\"]", "apps.a.upgrades[0]: HTTP/2"),
        (
            "[\"websocket/13\"]",
            "apps.a.upgrades[0]: \"websocket/13\": name the protocol",
        ),
        ("[\"\"]", "apps.a.upgrades[0]: \"\" is not an Upgrade token"),
    ] {
        let e = errors(&format!(
            "{CERT}\n[apps.a]\nhosts = [\"a.example\"]\nupstream = \"http://127.0.0.1:1\"\nupgrades = {tokens}\n"
        ));
        assert!(e.iter().any(|e| e.starts_with(want)), "{tokens}: {e:?}");
    }
    let c = parse(&format!(
        "{CERT}\n[apps.a]\nhosts = [\"a.example\"]\nupstream = \"http://127.0.0.1:1\"\nupgrades = [\"WebSocket\", \"foo\"]\n"
    ))
    .unwrap();
    assert_eq!(c.apps[0].upgrades, ["websocket", "foo"]);
}

/// Every default the README's config reference gives (a backticked value in
/// the default column of `[server]`, `[upstream]`, `[admin]`, `[log]`,
/// `[session]` and `[apps.NAME]`) is the code's: the shipped config with the
/// key removed loads to the same config as with the key set to that value.
#[test]
fn the_readme_defaults_are_the_code_defaults() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let shipped: toml::Table =
        toml::from_str(&std::fs::read_to_string(root().join("config.toml")).unwrap()).unwrap();
    let load = |t: &toml::Table| parse(&toml::to_string(t).unwrap()).map(|c| format!("{c:?}"));
    assert_eq!(
        load(&shipped).unwrap(),
        load(&shipped).unwrap(),
        "a config's Debug is deterministic"
    );
    let mut section: Option<Vec<String>> = None;
    let mut checked = 0;
    let mut wrong = Vec::new();
    for line in readme.lines() {
        if let Some(h) = line.strip_prefix("### `[") {
            let name = h.split("]`").next().unwrap_or("");
            section = match name {
                "server" | "upstream" | "admin" | "log" | "session" => Some(vec![name.into()]),
                "apps.NAME" => Some(vec!["apps".into(), "demo".into()]),
                _ => None,
            };
            continue;
        }
        if line.starts_with("## ") {
            section = None;
        }
        let Some(path) = &section else { continue };
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].starts_with('`') || !cells[2].starts_with('`') {
            continue;
        }
        let key = cells[1].trim_matches('`');
        let Ok(value) =
            toml::from_str::<toml::Table>(&format!("v = {}", cells[2].trim_matches('`')))
        else {
            continue;
        };
        let value = value["v"].clone();
        let mut without = shipped.clone();
        let mut with = shipped.clone();
        for (t, v) in [(&mut without, None), (&mut with, Some(value.clone()))] {
            let mut table = t;
            for p in path {
                table = table
                    .entry(p.clone())
                    .or_insert_with(|| toml::Value::Table(Default::default()))
                    .as_table_mut()
                    .unwrap();
            }
            match v {
                None => {
                    table.remove(key);
                }
                Some(v) => {
                    table.insert(key.to_string(), v);
                }
            }
        }
        // A key the shipped config cannot do without (session keys for an
        // enforced app) has no default to compare.
        let Ok(without) = load(&without) else {
            continue;
        };
        checked += 1;
        match load(&with) {
            Ok(with) if with == without => {}
            Ok(_) => wrong.push(format!(
                "{}.{key} = {value}: another config",
                path.join(".")
            )),
            Err(e) => wrong.push(format!("{}.{key} = {value}: refused ({e})", path.join("."))),
        }
    }
    assert!(checked >= 20, "found the README's defaults: {checked}");
    assert!(
        wrong.is_empty(),
        "README defaults the code does not have:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn park_after_must_be_shorter_than_the_header_timeout_and_not_zero() {
    let e = errors(&format!(
        "{CERT}\nheader_read_timeout = \"2s\"\npark_after = \"2s\"\n"
    ));
    assert_eq!(
        e,
        ["server.park_after: must be shorter than server.header_read_timeout"]
    );
    let e = errors(&format!("{CERT}\npark_after = \"0s\"\n"));
    assert_eq!(e, ["server.park_after: must be longer than 0s"]);
}

#[test]
fn park_after_unset_is_a_second_or_half_the_header_timeout() {
    let server = |extra: &str| parse(&format!("{CERT}{extra}")).unwrap().server;
    assert_eq!(server("").park_after, Duration::from_secs(1));
    let short = server("header_read_timeout = \"500ms\"\n");
    assert_eq!(short.park_after, Duration::from_millis(250));
}
