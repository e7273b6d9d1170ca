//! `trustgate-bench`: the load harness. It starts its own upstream and the
//! gateway (a child process with a generated config), or uses existing ones
//! (`--target`, `--upstream`), pre-generates signed assertions, runs each
//! scenario closed- or open-loop, optionally interleaved with the same load
//! against the upstream directly, and prints a latency table (hdrhistogram)
//! or JSON. Helper subcommands serve the upstream, print the gateway config,
//! a session cookie or assertion bodies for `benches/compare.sh`.
#![forbid(unsafe_code)]

mod assertions;
mod gateway;
mod load;
mod report;
mod upstream;

use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use http::header::HeaderValue;

use load::{Material, Plan, Pool, Proto, Scenario, Stop, Target};
use report::{Report, RunRecord};

/// The gateway's allocator, so that the generator spends as little of the
/// shared CPU as it can.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The User-Agent of every request: an iPhone, so the mobile policy rules
/// apply and an untrusted device is sent to enrollment.
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

#[derive(Parser)]
#[command(
    name = "trustgate-bench",
    version,
    about = "Load harness for trustgate"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the bench upstream (fixed-size 200 answers) until killed.
    Upstream {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:18081")]
        listen: SocketAddr,
        /// Response body size in bytes.
        #[arg(long, default_value_t = 1024)]
        response_size: usize,
    },
    /// Print the gateway config the harness generates.
    Config {
        /// The upstream address.
        #[arg(long)]
        upstream: SocketAddr,
        /// TLS listener.
        #[arg(long, default_value = "127.0.0.1:18443")]
        tls: SocketAddr,
        /// Plain listener.
        #[arg(long, default_value = "127.0.0.1:18080")]
        plain: SocketAddr,
        /// Admin listener.
        #[arg(long, default_value = "127.0.0.1:19901")]
        admin: SocketAddr,
        /// Folder with localhost.pem/.key and demo-idp.pem.
        #[arg(long, default_value = default_certs())]
        certs: PathBuf,
        /// The app without enforcement: a plain proxy.
        #[arg(long)]
        forward_only: bool,
    },
    /// Post one trusted assertion to a gateway and print the session cookie
    /// (`__Host-trustgate=...`).
    Cookie {
        /// The gateway, e.g. https://127.0.0.1:18443.
        #[arg(long)]
        target: String,
        /// Folder with dev-ca.pem and the demo IdP key.
        #[arg(long, default_value = default_certs())]
        certs: PathBuf,
    },
    /// Write `count` assertion form bodies, one a line (for wrk scripts).
    Assertions {
        /// How many.
        #[arg(long)]
        count: usize,
        /// DeviceTrustSignal value: TRUSTED or NOT_TRUSTED.
        #[arg(long, default_value = "TRUSTED")]
        trust: String,
        /// How long they stay valid.
        #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
        lifetime: Duration,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Folder with the demo IdP key.
        #[arg(long, default_value = default_certs())]
        certs: PathBuf,
    },
    /// Measure the memory of `count` live assertion IDs in the replay cache
    /// (in this process, with the gateway's own cache and key).
    ReplayMemory {
        /// How many assertion IDs.
        #[arg(long, default_value_t = 1_000_000)]
        count: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure the memory of `count` live sessions in the decision cache
    /// (in this process, with the gateway's own `Sessions`).
    SessionsMemory {
        /// How many sessions.
        #[arg(long, default_value_t = 1_000_000)]
        count: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Where the TEST-ONLY certificates are: `./certs`, else the source tree's
/// `certs/` beside the binary (`target/release/../../certs`), else the
/// folder this binary was built from.
fn default_certs() -> &'static str {
    static FOUND: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    FOUND.get_or_init(|| {
        let beside_binary = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("certs")));
        [Some(PathBuf::from("certs")), beside_binary]
            .into_iter()
            .flatten()
            .find(|d| d.join("dev-ca.pem").is_file())
            // Absolute: generated configs resolve paths from their own folder.
            .map(|d| std::fs::canonicalize(&d).unwrap_or(d).display().to_string())
            .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../certs").to_string())
    })
}

/// `--scenario`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ScenarioArg {
    /// A GET carrying a valid session cookie.
    Passthrough,
    /// An assertion POST whose device is trusted.
    AcsTrusted,
    /// An assertion POST from an untrusted iPhone.
    AcsUntrusted,
    /// The weighted mix of `--mix`.
    Mixed,
}

/// `--baseline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum BaselineArg {
    /// The same load against the upstream directly, interleaved.
    Direct,
}

/// One `--expect-status` entry: `scenario=code`.
fn expect_status(s: &str) -> Result<(Scenario, http::StatusCode), String> {
    let (name, code) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected scenario=status, as acs-trusted=303"))?;
    let sc = scenario(name.trim()).map_err(|e| e.to_string())?;
    let code = code
        .trim()
        .parse::<u16>()
        .ok()
        .and_then(|c| http::StatusCode::from_u16(c).ok())
        .ok_or_else(|| format!("{s:?}: {code:?} is not a status code"))?;
    Ok((sc, code))
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Scenarios to run, in order (mixed takes its weights from --mix).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "passthrough")]
    scenario: Vec<ScenarioArg>,
    /// The status each scenario's answers must have, as
    /// `acs-trusted=303,acs-untrusted=302`. With --target, a scenario not
    /// named here learns it from the target's first answer (a 4xx or 5xx
    /// there stops the run).
    #[arg(long, value_delimiter = ',', value_parser = expect_status)]
    expect_status: Vec<(Scenario, http::StatusCode)>,
    /// Weights of the mixed scenario.
    #[arg(long, default_value = "passthrough=90,acs-trusted=5,acs-untrusted=5")]
    mix: String,
    /// Requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// HTTP/2 connections (HTTP/1.1 opens one per request in flight).
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Length of each run.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, conflicts_with = "requests")]
    duration: Duration,
    /// Requests per run instead of a duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Open loop at this many requests per second; latency counts from each
    /// request's intended send time.
    #[arg(long)]
    rate: Option<f64>,
    /// HTTP/1.1 (the default).
    #[arg(long, conflicts_with = "http2")]
    http1: bool,
    /// HTTP/2.
    #[arg(long)]
    http2: bool,
    /// TLS to the gateway (the default).
    #[arg(long, conflicts_with = "plain")]
    tls: bool,
    /// Plain HTTP to the gateway.
    #[arg(long)]
    plain: bool,
    /// Interleave the same load against a baseline and print the ratio.
    #[arg(long, value_enum)]
    baseline: Option<BaselineArg>,
    /// Gateway and baseline runs alternate this many times (ABBA order).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Use this gateway instead of starting one, e.g. https://127.0.0.1:8443.
    #[arg(long)]
    target: Option<String>,
    /// With --target: the upstream for --baseline direct, e.g.
    /// http://127.0.0.1:8081.
    #[arg(long)]
    upstream: Option<String>,
    /// With --target: the target is another proxy (nginx), not trustgate;
    /// every answer is expected to be the upstream's 200.
    #[arg(long, requires = "target")]
    proxy: bool,
    /// Start the gateway with the app unenforced (a plain proxy): the
    /// reference for what enforcement costs. Every answer is the upstream's
    /// 200; pass-through requests carry a cookie of a session's size.
    #[arg(long, conflicts_with = "target")]
    forward_only: bool,
    /// Send this `name=value` cookie on pass-through requests instead of
    /// obtaining a session from the gateway.
    #[arg(long)]
    cookie: Option<String>,
    /// Response body size of the started upstream.
    #[arg(long, default_value_t = 1024)]
    response_size: usize,
    /// Path of the pass-through GET.
    #[arg(long, default_value = "/")]
    path: String,
    /// Per-request timeout.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Assertions to pre-generate per trust value (default: what the runs
    /// need, guessing 10,000/s for closed-loop runs).
    #[arg(long)]
    assertions: Option<usize>,
    /// Idle keep-alive connections to open to the gateway before the runs
    /// (each sends one request); reports the gateway's RSS per connection.
    #[arg(long, default_value_t = 0)]
    idle: usize,
    /// Load generator threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The trustgate binary (default: next to this one).
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// Folder with localhost.pem/.key, dev-ca.pem and the demo IdP key.
    #[arg(long, default_value = default_certs())]
    certs: PathBuf,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let threads = cli.run.threads.max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    match cli.cmd {
        Some(Cmd::Upstream {
            listen,
            response_size,
        }) => rt.block_on(async {
            let addr = upstream::start(listen, response_size).await?;
            eprintln!("upstream listening on http://{addr}, {response_size}-byte answers");
            std::future::pending::<()>().await;
            Ok(())
        }),
        Some(Cmd::Config {
            upstream,
            tls,
            plain,
            admin,
            certs,
            forward_only,
        }) => {
            print!(
                "{}",
                gateway::config(&certs, upstream, tls, plain, admin, forward_only)
            );
            Ok(())
        }
        Some(Cmd::Cookie { target, certs }) => rt.block_on(async {
            let t = parse_target(&target, &certs, true)?;
            let signer = assertions::signer(&certs).map_err(|e| anyhow!(e))?;
            println!("{}", session_cookie(&t, &signer).await?);
            Ok(())
        }),
        Some(Cmd::Assertions {
            count,
            trust,
            lifetime,
            out,
            certs,
        }) => {
            let signer = assertions::signer(&certs).map_err(|e| anyhow!(e))?;
            let bodies = assertions::bodies(&signer, &trust, count, lifetime);
            let mut f = std::io::BufWriter::new(std::fs::File::create(&out)?);
            for b in bodies {
                f.write_all(&b)?;
                f.write_all(b"\n")?;
            }
            f.flush()?;
            Ok(())
        }
        Some(Cmd::SessionsMemory { count, json }) => sessions_memory(count, json),
        Some(Cmd::ReplayMemory { count, json }) => replay_memory(count, json),
        None => rt.block_on(run(cli.run)),
    }
}

/// Parses `http(s)://host:port` into a target; `gateway` picks the expected
/// statuses.
fn parse_target(url: &str, certs: &Path, gateway: bool) -> Result<Target> {
    let uri: http::Uri = url.parse().with_context(|| format!("{url}: not a URL"))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => bail!("{url}: the scheme must be http or https"),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow!("{url}: no host"))?
        .clone();
    let host = authority.host().trim_matches(|c| c == '[' || c == ']');
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow!("{url}: no address"))?;
    if !addr.ip().is_loopback() {
        bail!("{url}: the harness only sends load to loopback addresses");
    }
    let server_name = rustls_pki_types::ServerName::try_from(host.to_string())
        .with_context(|| format!("{url}: bad server name"))?;
    Ok(Target {
        addr,
        authority: authority.to_string(),
        server_name,
        tls: if tls { Some(client_tls(certs)?) } else { None },
        gateway,
        expect: [None; 3],
    })
}

/// A rustls client config trusting `certs/dev-ca.pem`, ALPN h2 and http/1.1.
fn client_tls(certs: &Path) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let path = certs.join("dev-ca.pem");
    let pem = std::fs::read(&path).with_context(|| path.display().to_string())?;
    use rustls_pki_types::pem::PemObject;
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c?)?;
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The same target with ALPN for `proto`.
fn with_alpn(t: &Target, proto: Proto) -> Target {
    let mut t = t.clone();
    if let Some(cfg) = &t.tls {
        let mut cfg = (**cfg).clone();
        cfg.alpn_protocols = vec![match proto {
            Proto::H1 => b"http/1.1".to_vec(),
            Proto::H2 => b"h2".to_vec(),
        }];
        t.tls = Some(Arc::new(cfg));
    }
    t
}

/// Posts one trusted assertion and returns the `__Host-trustgate=...` pair.
async fn session_cookie(t: &Target, signer: &trustgate::demo::idp::Signer) -> Result<String> {
    let body = assertions::body(
        signer,
        "TRUSTED",
        std::time::SystemTime::now(),
        Duration::from_secs(300),
    );
    let m = Material {
        path: "/".into(),
        acs_path: gateway::ACS_PATH.into(),
        user_agent: HeaderValue::from_static(IPHONE),
        cookie: None,
        trusted: Pool::new(vec![Bytes::from(body)], false),
        untrusted: Pool::new(Vec::new(), false),
    };
    let t = with_alpn(t, Proto::H1);
    let (status, headers, _) = load::send_one(&t, Proto::H1, &m, Scenario::AcsTrusted)
        .await
        .map_err(|e| anyhow!("posting an assertion for a session: {e}"))?;
    headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|c| c.starts_with("__Host-trustgate="))
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the gateway answered {status} with no session cookie"))
}

/// The length of a session cookie's value, from a token signed here.
fn session_cookie_len() -> usize {
    use trustgate::classify::{Client, ClientKind, Platform};
    use trustgate::evidence::DeviceTrust;
    use trustgate::remember::token::{SessionToken, TokenKeys};
    let keys = TokenKeys::new([[0x5a_u8; 32]]).expect("a 32-byte key");
    let client = Client {
        platform: Platform::Ios,
        kind: ClientKind::Browser,
    };
    SessionToken::new(
        "bench",
        DeviceTrust::Trusted,
        client,
        "bench@corp.example",
        std::time::SystemTime::now(),
        Duration::from_secs(3600),
    )
    .ok()
    .and_then(|t| keys.sign(&t).ok())
    .map(|c| c.len())
    .unwrap_or(100)
}

/// Scenarios of ticket i, from `passthrough=90,acs-trusted=5,...`, spread
/// by smooth weighted round robin so the kinds interleave.
fn parse_mix(s: &str) -> Result<Vec<Scenario>> {
    let mut weights = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (name, w) = part
            .split_once('=')
            .ok_or_else(|| anyhow!("--mix {part:?}: expected name=weight"))?;
        let sc = scenario(name.trim())?;
        let w: i64 = w
            .trim()
            .parse()
            .with_context(|| format!("--mix {part:?}: bad weight"))?;
        if w > 0 {
            weights.push((sc, w));
        }
    }
    let total: i64 = weights.iter().map(|(_, w)| w).sum();
    if total == 0 || total > 10_000 {
        bail!("--mix: weights must add up to between 1 and 10000");
    }
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, (_, w)) in current.iter_mut().zip(&weights) {
            *c += w;
        }
        let (i, _) = current
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
            .expect("at least one weight");
        current[i] -= total;
        out.push(weights[i].0);
    }
    Ok(out)
}

fn scenario(name: &str) -> Result<Scenario> {
    Scenario::ALL
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| anyhow!("unknown scenario {name:?}: expected passthrough, acs-trusted, acs-untrusted or mixed"))
}

/// The harness run: start what is needed, generate assertions, run every
/// scenario (interleaved with the baseline), report.
async fn run(a: RunArgs) -> Result<()> {
    let proto = if a.http2 { Proto::H2 } else { Proto::H1 };
    let use_tls = !a.plain;
    let stop = match a.requests {
        Some(n) => Stop::Requests(n),
        None => Stop::Duration(a.duration),
    };
    if a.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let baseline = a.baseline == Some(BaselineArg::Direct);
    let mut runs: Vec<(String, Vec<Scenario>)> = Vec::new();
    for arg in &a.scenario {
        let (name, mix) = match arg {
            ScenarioArg::Mixed => ("mixed", parse_mix(&a.mix)?),
            ScenarioArg::Passthrough => ("passthrough", vec![Scenario::Passthrough]),
            ScenarioArg::AcsTrusted => ("acs-trusted", vec![Scenario::AcsTrusted]),
            ScenarioArg::AcsUntrusted => ("acs-untrusted", vec![Scenario::AcsUntrusted]),
        };
        runs.push((name.to_string(), mix));
    }
    let quiet = a.json || !std::io::stdout().is_terminal();
    let say = |m: &str| {
        if !a.json {
            eprintln!("{m}");
        }
    };

    // The upstream and the gateway.
    let mut started_upstream = None;
    let upstream_addr = match &a.upstream {
        Some(u) => Some(parse_target(u, &a.certs, false)?.addr),
        None if a.target.is_none() => {
            let addr = upstream::start("127.0.0.1:0".parse()?, a.response_size).await?;
            started_upstream = Some(addr);
            Some(addr)
        }
        None => None,
    };
    let mut child = None;
    let gw_target = match &a.target {
        Some(url) => parse_target(url, &a.certs, !a.proxy)?,
        None => {
            let bin = match &a.gateway_bin {
                Some(b) => b.clone(),
                None => std::env::current_exe()?
                    .parent()
                    .ok_or_else(|| anyhow!("no folder for the current executable"))?
                    .join("trustgate"),
            };
            let up = upstream_addr.expect("started above");
            let g = gateway::Gateway::start(&bin, &a.certs, up, a.forward_only)
                .await
                .map_err(|e| anyhow!("starting {}: {e}", bin.display()))?;
            let url = if use_tls {
                format!("https://localhost:{}", g.tls.port())
            } else {
                format!("http://127.0.0.1:{}", g.plain.port())
            };
            say(&format!(
                "gateway pid {} on {url} (admin http://{}), upstream http://{up}",
                g.pid(),
                g.admin
            ));
            child = Some(g);
            parse_target(&url, &a.certs, !a.forward_only)?
        }
    };
    let mut gw_target = with_alpn(&gw_target, proto);
    for (sc, status) in &a.expect_status {
        gw_target.expect[sc.index()] = Some(*status);
    }
    let direct_target = match (baseline, upstream_addr) {
        (false, _) => None,
        (true, None) => bail!("--baseline direct with --target needs --upstream"),
        (true, Some(addr)) => Some(Target {
            addr,
            authority: addr.to_string(),
            server_name: rustls_pki_types::ServerName::try_from("localhost")?.to_owned(),
            tls: None,
            gateway: false,
            expect: [None; 3],
        }),
    };

    // Assertions, before any load.
    let signer = assertions::signer(&a.certs).map_err(|e| anyhow!(e))?;
    let need = |kind: Scenario| -> usize {
        runs.iter()
            .map(|(_, mix)| {
                let share = mix.iter().filter(|s| **s == kind).count() as f64 / mix.len() as f64;
                let n = match (stop, a.rate) {
                    (Stop::Requests(n), _) => n as f64,
                    (Stop::Duration(d), Some(r)) => d.as_secs_f64() * r,
                    (Stop::Duration(d), None) => d.as_secs_f64() * 10_000.0,
                };
                (n * share * 1.02).ceil() as usize + usize::from(share > 0.0) * 16
            })
            .sum::<usize>()
            * a.rounds.max(1)
    };
    // --assertions overrides the count of each kind a scenario uses.
    // A target that does not verify (another proxy, or the unenforced
    // gateway) gets a small set, reused round robin.
    let reuse = a.proxy || a.forward_only;
    let count = |kind| match (need(kind), a.assertions) {
        (0, _) => 0,
        (_, Some(n)) if reuse => n.min(1000),
        (n, None) if reuse => n.min(1000),
        (_, Some(n)) => n,
        (n, None) => n,
    };
    let (n_trusted, n_untrusted) = (count(Scenario::AcsTrusted), count(Scenario::AcsUntrusted));
    let planned = match stop {
        Stop::Duration(d) => d * (a.rounds.max(1) * runs.len()) as u32,
        Stop::Requests(_) => Duration::from_secs(600),
    };
    let lifetime = planned * 2 + Duration::from_secs(600);
    if n_trusted + n_untrusted > 0 {
        say(&format!(
            "signing {n_trusted} trusted and {n_untrusted} untrusted assertions ..."
        ));
    }
    let t0 = std::time::Instant::now();
    let trusted = assertions::bodies(&signer, "TRUSTED", n_trusted, lifetime);
    let untrusted = assertions::bodies(&signer, "NOT_TRUSTED", n_untrusted, lifetime);
    if n_trusted + n_untrusted > 0 {
        say(&format!("signed in {:.1} s", t0.elapsed().as_secs_f64()));
    }
    let sample = |v: &[Bytes]| v.iter().take(1000).cloned().collect::<Vec<_>>();
    let direct_material = Arc::new(Material {
        path: a.path.clone(),
        acs_path: gateway::ACS_PATH.into(),
        user_agent: HeaderValue::from_static(IPHONE),
        cookie: None,
        trusted: Pool::new(sample(&trusted), true),
        untrusted: Pool::new(sample(&untrusted), true),
    });
    let needs_cookie = runs
        .iter()
        .any(|(_, mix)| mix.contains(&Scenario::Passthrough));
    let cookie = if let Some(c) = &a.cookie {
        Some(HeaderValue::from_str(c)?)
    } else if needs_cookie && a.forward_only {
        // The size of a real session cookie, so requests weigh the same.
        let fake = session_cookie_len();
        Some(HeaderValue::from_str(&format!(
            "__Host-trustgate={}",
            "x".repeat(fake)
        ))?)
    } else if needs_cookie && !a.proxy {
        let c = session_cookie(&gw_target, &signer).await?;
        Some(HeaderValue::from_str(&c)?)
    } else {
        None
    };
    let gw_material = Arc::new(Material {
        path: a.path.clone(),
        acs_path: gateway::ACS_PATH.into(),
        user_agent: HeaderValue::from_static(IPHONE),
        cookie: cookie.clone(),
        trusted: Pool::new(trusted, reuse),
        untrusted: Pool::new(untrusted, reuse),
    });

    // A target of the user's own answers as it is configured to (the demo
    // app follows RelayState with a 303): its first answer to each
    // scenario says what the rest must be, unless --expect-status did.
    if a.target.is_some() {
        let used: Vec<Scenario> = Scenario::ALL
            .into_iter()
            .filter(|s| runs.iter().any(|(_, mix)| mix.contains(s)))
            .filter(|s| gw_target.expect[s.index()].is_none())
            .collect();
        for sc in used {
            let (status, _, _) = load::send_one(&gw_target, proto, &gw_material, sc)
                .await
                .map_err(|e| anyhow!("first {} request: {e}", sc.name()))?;
            if status.is_client_error() || status.is_server_error() {
                bail!(
                    "the target answered {} to the first {} request; pass --expect-status {}={} if that is what it should answer",
                    status.as_u16(),
                    sc.name(),
                    sc.name(),
                    status.as_u16()
                );
            }
            say(&format!(
                "{}: expecting {} (the target's first answer)",
                sc.name(),
                status.as_u16()
            ));
            gw_target.expect[sc.index()] = Some(status);
        }
    }

    let mut report = Report::new(&settings(&a, proto, use_tls, child.is_some()));
    let stats_of = |c: &Option<gateway::Gateway>| c.as_ref().and_then(|g| g.stats());

    // Idle keep-alive connections, measured before the load.
    let mut idle = Vec::new();
    if a.idle > 0 {
        let before = stats_of(&child);
        say(&format!(
            "opening {} idle keep-alive connections ...",
            a.idle
        ));
        let m = Material {
            path: a.path.clone(),
            acs_path: gateway::ACS_PATH.into(),
            user_agent: HeaderValue::from_static(IPHONE),
            cookie: cookie.clone(),
            trusted: Pool::new(Vec::new(), false),
            untrusted: Pool::new(Vec::new(), false),
        };
        let (conns, failed) = load::open_idle(&gw_target, proto, &m, a.idle).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = stats_of(&child);
        report.idle(conns.len(), failed, before, after);
        idle = conns;
    }

    let plan = |mix: Vec<Scenario>| Plan {
        proto,
        concurrency: a.concurrency,
        connections: a.connections,
        stop,
        rate: a.rate,
        mix,
        timeout: a.timeout,
    };
    for (name, mix) in &runs {
        for round in 0..a.rounds.max(1) {
            // ABBA: the baseline goes first on odd rounds.
            let order: Vec<bool> = match (&direct_target, round % 2) {
                (None, _) => vec![true],
                (Some(_), 0) => vec![true, false],
                (Some(_), _) => vec![false, true],
            };
            for is_gw in order {
                let (t, m) = if is_gw {
                    (gw_target.clone(), gw_material.clone())
                } else {
                    (
                        with_alpn(direct_target.as_ref().expect("baseline"), proto),
                        direct_material.clone(),
                    )
                };
                let label = match (is_gw, a.proxy, a.forward_only) {
                    (false, _, _) => "direct",
                    (true, true, _) => "proxy",
                    (true, _, true) => "tg-forward",
                    (true, false, false) => "trustgate",
                };
                let before = if is_gw { stats_of(&child) } else { None };
                let me_before = gateway::proc_stats("self");
                let load_before = loadavg();
                let progress = Arc::new(AtomicU64::new(0));
                let bar = (!quiet).then(|| progress_bar(&progress, stop, a.rate, name, label));
                let out = load::run(t, plan(mix.clone()), m, progress).await;
                if let Some((bar, ticker)) = bar {
                    ticker.abort();
                    bar.finish_and_clear();
                }
                let after = if is_gw { stats_of(&child) } else { None };
                let me_after = gateway::proc_stats("self");
                report.push(RunRecord::new(
                    name,
                    label,
                    round,
                    mix,
                    &out,
                    before.zip(after),
                    me_before.zip(me_after),
                    load_before,
                ));
            }
        }
    }
    drop(idle);
    report.gateway = stats_of(&child);
    report.upstream_started = started_upstream.is_some();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        print!("{}", report.table());
    }
    drop(child);
    if report.any_errors() {
        std::process::exit(2);
    }
    Ok(())
}

fn settings(a: &RunArgs, proto: Proto, tls: bool, started: bool) -> serde_json::Value {
    serde_json::json!({
        "proto": if proto == Proto::H2 { "h2" } else { "http/1.1" },
        "tls": tls,
        "concurrency": a.concurrency,
        "connections": if proto == Proto::H2 { a.connections } else { a.concurrency },
        "duration_s": a.requests.is_none().then_some(a.duration.as_secs_f64()),
        "requests": a.requests,
        "rate": a.rate,
        "rounds": a.rounds,
        "response_size": a.response_size,
        "baseline": a.baseline.map(|_| "direct"),
        "target": a.target,
        "target_is_other_proxy": a.proxy,
        "forward_only": a.forward_only,
        "gateway_started_by_harness": started,
        "generator_threads": a.threads,
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    })
}

/// The 1-minute load average, when /proc has it.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn progress_bar(
    progress: &Arc<AtomicU64>,
    stop: Stop,
    rate: Option<f64>,
    name: &str,
    label: &str,
) -> (indicatif::ProgressBar, tokio::task::JoinHandle<()>) {
    let len = match (stop, rate) {
        (Stop::Requests(n), _) => Some(n),
        (Stop::Duration(d), Some(r)) => Some((d.as_secs_f64() * r) as u64),
        (Stop::Duration(_), None) => None,
    };
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos} requests, {per_sec}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(format!("{name} via {label}"));
    let (b, p) = (bar.clone(), progress.clone());
    let ticker = tokio::spawn(async move {
        loop {
            b.set_position(p.load(Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (bar, ticker)
}

/// Issues `count` sessions into the gateway's decision cache and reports the
/// resident memory they take.
fn sessions_memory(count: u64, json: bool) -> Result<()> {
    use trustgate::classify::{Client, ClientKind, Platform};
    use trustgate::evidence::DeviceTrust;
    use trustgate::remember::sessions::Sessions;
    use trustgate::remember::token::{SessionToken, TokenKeys};

    let keys = TokenKeys::new([[0x5a_u8; 32]]).map_err(|e| anyhow!("{e}"))?;
    let client = Client {
        platform: Platform::Ios,
        kind: ClientKind::Browser,
    };
    // Each entry remembers the User-Agent it came with, so the requests carry one.
    let mut request = http::HeaderMap::new();
    request.insert(http::header::USER_AGENT, HeaderValue::from_static(IPHONE));
    let now = std::time::SystemTime::now();
    let before = gateway::proc_stats("self").ok_or_else(|| anyhow!("no /proc/self"))?;
    // Room for all of them (the gateway's default is 1,000,000, its
    // `server.decision_cache_entries`), so that none is evicted mid-count.
    let capacity = count.saturating_mul(2).max(1000);
    let sessions = Sessions::new(Duration::from_secs(8 * 3600), capacity);
    let mut kept = 0u64;
    for i in 0..count {
        let token = SessionToken::new(
            "bench",
            DeviceTrust::Trusted,
            client,
            &format!("user{i}@corp.example"),
            now,
            Duration::from_secs(8 * 3600),
        )
        .map_err(|e| anyhow!("{e}"))?;
        sessions
            .issue(&keys, token, &request)
            .map_err(|e| anyhow!("{e}"))?;
        kept += 1;
    }
    let entries = sessions.cached();
    let after = gateway::proc_stats("self").ok_or_else(|| anyhow!("no /proc/self"))?;
    let delta = after.rss_bytes.saturating_sub(before.rss_bytes);
    let per = delta as f64 / kept.max(1) as f64;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "sessions": kept,
                "cache_entries": entries,
                "rss_before_bytes": before.rss_bytes,
                "rss_after_bytes": after.rss_bytes,
                "bytes_per_session": per,
            })
        );
    } else {
        println!(
            "{kept} sessions issued ({entries} cache entries): RSS {} -> {} MB, {:.0} bytes per session",
            before.rss_bytes >> 20,
            after.rss_bytes >> 20,
            per
        );
    }
    Ok(())
}

fn replay_memory(count: u64, json: bool) -> Result<()> {
    use trustgate::evidence::assertion::bench_support::Replay;

    // An Okta-like issuer and 34-character IDs, as Okta writes them.
    const ISSUER: &str = "http://www.okta.com/exkJTvJmH43mEMjCjd7Y";
    let before = gateway::proc_stats("self").ok_or_else(|| anyhow!("no /proc/self"))?;
    let cache = Replay::new(count.max(1000));
    let ttl = Duration::from_secs(360);
    let mut kept = 0u64;
    for i in 0..count {
        if cache.first_use(ISSUER, &format!("id{i:032x}"), ttl) {
            kept += 1;
        }
    }
    let live = cache.live();
    let after = gateway::proc_stats("self").ok_or_else(|| anyhow!("no /proc/self"))?;
    let delta = after.rss_bytes.saturating_sub(before.rss_bytes);
    let per = delta as f64 / kept.max(1) as f64;
    if kept != count {
        bail!("the cache refused {} of {count} ids", count - kept);
    }
    if json {
        println!(
            "{}",
            serde_json::json!({
                "ids": kept,
                "live": live,
                "rss_before_bytes": before.rss_bytes,
                "rss_after_bytes": after.rss_bytes,
                "bytes_per_id": per,
            })
        );
    } else {
        println!(
            "{kept} assertion ids remembered ({live} live): RSS {} -> {} MB, {:.0} bytes per id",
            before.rss_bytes >> 20,
            after.rss_bytes >> 20,
            per
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
