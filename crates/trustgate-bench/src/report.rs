//! What the harness prints: one row per scenario and target (rounds merged),
//! the gateway/direct ratio, errors by kind, the gateway's CPU seconds and
//! peak RSS, as a table or as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::gateway::ProcStats;
use crate::load::{Outcome, Scenario};

/// One run of one scenario against one target.
pub struct RunRecord {
    scenario: String,
    target: &'static str,
    round: usize,
    /// Latency per part: the whole run first, then each scenario of a mix.
    parts: Vec<(String, Histogram<u64>)>,
    ok: u64,
    errors: BTreeMap<String, u64>,
    elapsed_s: f64,
    bytes: u64,
    pool_exhausted: bool,
    gateway_cpu_s: Option<f64>,
    generator_cpu_s: Option<f64>,
    loadavg: Option<f64>,
}

impl RunRecord {
    /// Records `out`; `gw` and `me` are CPU stats before and after.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        scenario: &str,
        target: &'static str,
        round: usize,
        mix: &[Scenario],
        out: &Outcome,
        gw: Option<(ProcStats, ProcStats)>,
        me: Option<(ProcStats, ProcStats)>,
        loadavg: Option<f64>,
    ) -> RunRecord {
        let mut parts = vec![(scenario.to_string(), out.total.clone())];
        let mut kinds: Vec<Scenario> = mix.to_vec();
        kinds.sort();
        kinds.dedup();
        if kinds.len() > 1 {
            for k in kinds {
                parts.push((
                    format!("{scenario}:{}", k.name()),
                    out.latency[k as usize].clone(),
                ));
            }
        }
        RunRecord {
            scenario: scenario.to_string(),
            target,
            round,
            parts,
            ok: out.ok,
            errors: out.errors.clone(),
            elapsed_s: out.elapsed.as_secs_f64(),
            bytes: out.bytes,
            pool_exhausted: out.pool_exhausted,
            gateway_cpu_s: gw.map(|(a, b)| b.cpu_seconds - a.cpu_seconds),
            generator_cpu_s: me.map(|(a, b)| b.cpu_seconds - a.cpu_seconds),
            loadavg,
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "scenario": self.scenario,
            "target": self.target,
            "round": self.round,
            "ok": self.ok,
            "errors": self.errors,
            "elapsed_s": self.elapsed_s,
            "requests_per_s": self.ok as f64 / self.elapsed_s.max(1e-9),
            "latency_ms": latency(&self.parts[0].1),
            "response_bytes": self.bytes,
            "assertion_pool_exhausted": self.pool_exhausted,
            "gateway_cpu_s": self.gateway_cpu_s,
            "generator_cpu_s": self.generator_cpu_s,
            "loadavg_1m_at_start": self.loadavg,
        })
    }
}

/// Percentiles in milliseconds.
fn latency(h: &Histogram<u64>) -> serde_json::Value {
    let ms = |ns: u64| ns as f64 / 1e6;
    serde_json::json!({
        "count": h.len(),
        "p50": ms(h.value_at_quantile(0.50)),
        "p90": ms(h.value_at_quantile(0.90)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p99_9": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
    })
}

/// A row of the summary: one part of one scenario on one target, every
/// round merged.
struct Row {
    part: String,
    target: &'static str,
    rps: f64,
    hist: Histogram<u64>,
    errors: u64,
    gateway_cpu_s: Option<f64>,
}

/// Everything one harness invocation measured.
pub struct Report {
    settings: serde_json::Value,
    runs: Vec<RunRecord>,
    idle: Option<serde_json::Value>,
    /// The started gateway's stats at the end.
    pub gateway: Option<ProcStats>,
    /// Whether the harness started the upstream.
    pub upstream_started: bool,
}

impl Report {
    /// An empty report with these settings.
    pub fn new(settings: &serde_json::Value) -> Report {
        Report {
            settings: settings.clone(),
            runs: Vec::new(),
            idle: None,
            gateway: None,
            upstream_started: false,
        }
    }

    /// Adds a run.
    pub fn push(&mut self, r: RunRecord) {
        self.runs.push(r);
    }

    /// Records the idle-connection measurement.
    pub fn idle(
        &mut self,
        open: usize,
        failed: usize,
        before: Option<ProcStats>,
        after: Option<ProcStats>,
    ) {
        let delta = before
            .zip(after)
            .map(|(b, a)| a.rss_bytes.saturating_sub(b.rss_bytes));
        self.idle = Some(serde_json::json!({
            "open": open,
            "failed": failed,
            "gateway_rss_before_bytes": before.map(|s| s.rss_bytes),
            "gateway_rss_after_bytes": after.map(|s| s.rss_bytes),
            "bytes_per_connection": delta.map(|d| d as f64 / open.max(1) as f64),
        }));
    }

    /// Whether any run had an error or an unexpected status.
    pub fn any_errors(&self) -> bool {
        self.runs.iter().any(|r| !r.errors.is_empty())
    }

    fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = Vec::new();
        for r in &self.runs {
            for (i, (part, h)) in r.parts.iter().enumerate() {
                let row = match rows
                    .iter_mut()
                    .position(|x| x.part == *part && x.target == r.target)
                {
                    Some(p) => &mut rows[p],
                    None => {
                        rows.push(Row {
                            part: part.clone(),
                            target: r.target,
                            rps: 0.0,
                            hist: Histogram::new_from(h),
                            errors: 0,
                            gateway_cpu_s: None,
                        });
                        rows.last_mut().expect("just pushed")
                    }
                };
                row.hist.add(h).expect("same histogram bounds");
                if i == 0 {
                    row.errors += r.errors.values().sum::<u64>();
                    row.gateway_cpu_s = match (row.gateway_cpu_s, r.gateway_cpu_s) {
                        (Some(a), Some(b)) => Some(a + b),
                        (a, b) => a.or(b),
                    };
                }
            }
        }
        // Throughput over every round: completions over time.
        for row in &mut rows {
            let elapsed: f64 = self
                .runs
                .iter()
                .filter(|r| r.target == row.target)
                .filter(|r| {
                    row.part == r.scenario || row.part.starts_with(&format!("{}:", r.scenario))
                })
                .map(|r| r.elapsed_s)
                .sum();
            row.rps = row.hist.len() as f64 / elapsed.max(1e-9);
        }
        rows
    }

    fn ratios(&self, rows: &[Row]) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for gw in rows.iter().filter(|r| r.target != "direct") {
            if let Some(d) = rows
                .iter()
                .find(|r| r.target == "direct" && r.part == gw.part)
            {
                let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64 / 1e6;
                out.push(serde_json::json!({
                    "scenario": gw.part,
                    "target": gw.target,
                    "throughput_ratio": gw.rps / d.rps.max(1e-9),
                    "p99_delta_ms": p99(&gw.hist) - p99(&d.hist),
                }));
            }
        }
        out
    }

    /// The machine-readable report.
    pub fn json(&self) -> serde_json::Value {
        let rows = self.rows();
        serde_json::json!({
            "settings": self.settings,
            "summary": rows.iter().map(|r| serde_json::json!({
                "scenario": r.part,
                "target": r.target,
                "requests_per_s": r.rps,
                "latency_ms": latency(&r.hist),
                "errors": r.errors,
                "gateway_cpu_s": r.gateway_cpu_s,
            })).collect::<Vec<_>>(),
            "ratios": self.ratios(&rows),
            "runs": self.runs.iter().map(RunRecord::json).collect::<Vec<_>>(),
            "idle_connections": self.idle,
            "gateway": self.gateway,
            "upstream_started_by_harness": self.upstream_started,
        })
    }

    /// The human-readable report.
    pub fn table(&self) -> String {
        let rows = self.rows();
        let mut s = String::new();
        let ms = |ns: u64| format!("{:.3}", ns as f64 / 1e6);
        let _ = writeln!(
            s,
            "{:<28} {:<10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>8}",
            "scenario",
            "via",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "errors",
            "gw cpu s"
        );
        for r in &rows {
            let h = &r.hist;
            let _ = writeln!(
                s,
                "{:<28} {:<10} {:>10.0} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>8}",
                r.part,
                r.target,
                r.rps,
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.9)),
                ms(h.value_at_quantile(0.99)),
                ms(h.value_at_quantile(0.999)),
                ms(h.max()),
                r.errors,
                r.gateway_cpu_s
                    .map(|c| format!("{c:.2}"))
                    .unwrap_or_else(|| "-".into()),
            );
        }
        for x in self.ratios(&rows) {
            let _ = writeln!(
                s,
                "ratio {}: {}/direct throughput {:.2}x, p99 {:+.3} ms",
                x["scenario"].as_str().unwrap_or(""),
                x["target"].as_str().unwrap_or(""),
                x["throughput_ratio"].as_f64().unwrap_or(0.0),
                x["p99_delta_ms"].as_f64().unwrap_or(0.0),
            );
        }
        for r in &self.runs {
            for (k, v) in &r.errors {
                let _ = writeln!(
                    s,
                    "error {} via {} round {}: {k} x{v}",
                    r.scenario, r.target, r.round
                );
            }
            if r.pool_exhausted {
                let _ = writeln!(
                    s,
                    "note {} via {} round {}: the assertion pool ran out; the run ended early (raise --assertions)",
                    r.scenario, r.target, r.round
                );
            }
        }
        let gen: f64 = self.runs.iter().filter_map(|r| r.generator_cpu_s).sum();
        let loads: Vec<String> = self
            .runs
            .iter()
            .filter_map(|r| r.loadavg.map(|l| format!("{l:.2}")))
            .collect();
        let _ = writeln!(
            s,
            "load generator cpu {gen:.2} s; 1-min load average at each run's start: {}",
            loads.join(" ")
        );
        if let Some(idle) = &self.idle {
            let _ = writeln!(
                s,
                "idle keep-alive connections: {} open ({} failed), gateway RSS {} -> {} MB, {:.0} bytes each",
                idle["open"],
                idle["failed"],
                idle["gateway_rss_before_bytes"].as_u64().unwrap_or(0) >> 20,
                idle["gateway_rss_after_bytes"].as_u64().unwrap_or(0) >> 20,
                idle["bytes_per_connection"].as_f64().unwrap_or(0.0)
            );
        }
        if let Some(g) = &self.gateway {
            let _ = writeln!(
                s,
                "gateway: {:.2} cpu s in total, RSS {:.1} MB, peak RSS {:.1} MB",
                g.cpu_seconds,
                g.rss_bytes as f64 / 1048576.0,
                g.peak_rss_bytes as f64 / 1048576.0
            );
        }
        s
    }
}
