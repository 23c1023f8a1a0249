//! `arogya-auth-bench`: a load generator that drives a running arogya-auth over real gRPC with
//! the project's own generated client, and reports requests/s, latency percentiles and errors
//! per status code — each scenario also as a ratio to `baseline` (grpc.health.v1 Check on the
//! same server in the same run), so figures from a noisy shared machine stay comparable.
//!
//! The server must run with rate limits off and the `log` SMS provider (for `dev_otp`):
//! `AROGYA_RATE_LIMIT__ENABLED=false cargo run --release`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arogya_auth::proto::auth_service_client::AuthServiceClient;
use arogya_auth::proto::{
    RefreshSessionRequest, RequestOtpRequest, ValidateSessionRequest, VerifyOtpRequest,
};
use clap::Parser;
use hdrhistogram::Histogram;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "arogya-auth-bench",
    about = "Load generator for arogya-auth (real gRPC)"
)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// Scenarios to run, comma-separated: baseline, validate, signin, refresh (or `all`).
    #[arg(long, default_value = "all")]
    scenarios: String,
    /// Concurrent streams (requests in flight).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// HTTP/2 connections the streams share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// How long each scenario runs (seconds); ignored when --requests is set.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop each scenario after this many requests instead.
    #[arg(long)]
    requests: Option<u64>,
    /// Sessions created up front for `validate` (their tokens are used round-robin).
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// Label for the JSON (`embedded`, `redis+postgres`, …).
    #[arg(long, default_value = "unknown")]
    backend: String,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scenario {
    Baseline,
    Validate,
    Signin,
    Refresh,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Baseline => "baseline",
            Scenario::Validate => "validate",
            Scenario::Signin => "signin",
            Scenario::Refresh => "refresh",
        }
    }
}

struct Outcome {
    rps: f64,
    hist: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

/// Distinct numbers for every sign-in of this run (98xxxxxxxx: all mobile ranges).
struct Numbers(AtomicU64);

impl Numbers {
    fn new() -> Self {
        let start = 9_800_000_000 + (rand::random::<u64>() % 80_000_000);
        Self(AtomicU64::new(start))
    }
    fn next(&self) -> String {
        self.0.fetch_add(1, Ordering::Relaxed).to_string()
    }
}

async fn sign_in(
    c: &mut AuthServiceClient<Channel>,
    phone: String,
) -> Result<(String, String), tonic::Status> {
    let sent = c
        .request_otp(RequestOtpRequest {
            phone_number: phone.clone(),
        })
        .await?
        .into_inner();
    if sent.dev_otp.is_empty() {
        return Err(tonic::Status::failed_precondition(
            "no dev_otp: run the server with the log SMS provider, outside production",
        ));
    }
    let v = c
        .verify_otp(VerifyOtpRequest {
            phone_number: phone,
            otp: sent.dev_otp,
        })
        .await?
        .into_inner();
    Ok((v.access_token, v.refresh_token))
}

async fn connect(args: &Args) -> Result<Vec<Channel>, String> {
    let mut out = Vec::new();
    for _ in 0..args.connections.max(1) {
        let ch = Channel::from_shared(args.addr.clone())
            .map_err(|e| format!("--addr: {e}"))?
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", args.addr))?;
        out.push(ch);
    }
    Ok(out)
}

async fn run(
    args: &Args,
    scenario: Scenario,
    channels: &[Channel],
    tokens: Arc<Vec<String>>,
) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let budget = Arc::new(AtomicU64::new(args.requests.unwrap_or(u64::MAX)));
    let numbers = Arc::new(Numbers::new());
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..args.concurrency.max(1) {
        let channel = channels[w % channels.len()].clone();
        let (stop, budget, numbers, tokens) = (
            stop.clone(),
            budget.clone(),
            numbers.clone(),
            tokens.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut hist =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            let mut auth = AuthServiceClient::new(channel.clone());
            let mut health = HealthClient::new(channel);
            let mut refresh_token = None;
            let mut i = w;
            while !stop.load(Ordering::Relaxed)
                && budget
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                    .is_ok()
            {
                let t = Instant::now();
                let result: Result<(), tonic::Status> = match scenario {
                    Scenario::Baseline => health
                        .check(HealthCheckRequest {
                            service: String::new(),
                        })
                        .await
                        .map(|_| ()),
                    Scenario::Validate => {
                        let token = tokens[i % tokens.len()].clone();
                        i += args_stride();
                        auth.validate_session(ValidateSessionRequest {
                            access_token: token,
                        })
                        .await
                        .map(|_| ())
                    }
                    Scenario::Signin => sign_in(&mut auth, numbers.next()).await.map(|_| ()),
                    Scenario::Refresh => {
                        let current = match refresh_token.take() {
                            Some(t) => Ok(t),
                            None => sign_in(&mut auth, numbers.next()).await.map(|(_, r)| r),
                        };
                        match current {
                            Ok(t) => auth
                                .refresh_session(RefreshSessionRequest { refresh_token: t })
                                .await
                                .map(|r| refresh_token = Some(r.into_inner().refresh_token)),
                            Err(e) => Err(e),
                        }
                    }
                };
                let us = t.elapsed().as_micros().clamp(1, 60_000_000) as u64;
                match result {
                    Ok(()) => {
                        let _ = hist.record(us);
                    }
                    Err(s) => *errors.entry(format!("{:?}", s.code())).or_default() += 1,
                }
            }
            (hist, errors)
        }));
    }
    if args.requests.is_none() {
        tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
        stop.store(true, Ordering::Relaxed);
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let mut errors = BTreeMap::new();
    for w in workers {
        if let Ok((h, e)) = w.await {
            let _ = hist.add(h);
            for (k, v) in e {
                *errors.entry(k).or_default() += v;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    Outcome {
        rps: hist.len() as f64 / secs,
        hist,
        errors,
    }
}

/// Workers step through the token list by a prime, so they spread over all sessions.
fn args_stride() -> usize {
    7919
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = Args::parse();
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 86_400.0) {
        eprintln!("arogya-auth-bench: --duration must be a number of seconds between 0 and 86400");
        return std::process::ExitCode::FAILURE;
    }
    let mut scenarios: Vec<Scenario> = Vec::new();
    for name in args.scenarios.split(',').map(str::trim) {
        match name {
            "all" => scenarios.extend([
                Scenario::Baseline,
                Scenario::Validate,
                Scenario::Signin,
                Scenario::Refresh,
            ]),
            "baseline" => scenarios.push(Scenario::Baseline),
            "validate" => scenarios.push(Scenario::Validate),
            "signin" => scenarios.push(Scenario::Signin),
            "refresh" => scenarios.push(Scenario::Refresh),
            other => {
                eprintln!(
                    "arogya-auth-bench: unknown scenario {other:?} (baseline, validate, signin, refresh, all)"
                );
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    if !scenarios.contains(&Scenario::Baseline) {
        scenarios.insert(0, Scenario::Baseline); // every ratio needs it
    }
    scenarios.sort();
    scenarios.dedup();
    let channels = match connect(&args).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("arogya-auth-bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut tokens = Vec::new();
    if scenarios.contains(&Scenario::Validate) {
        let numbers = Numbers::new();
        let mut c = AuthServiceClient::new(channels[0].clone());
        for _ in 0..args.sessions.max(1) {
            match sign_in(&mut c, numbers.next()).await {
                Ok((access, _)) => tokens.push(access),
                Err(e) => {
                    eprintln!(
                        "arogya-auth-bench: cannot create sessions for `validate`: {} {}",
                        e.code(),
                        e.message()
                    );
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
    }
    let tokens = Arc::new(tokens);

    println!(
        "backend {}, {} streams over {} connections, {}",
        args.backend,
        args.concurrency,
        args.connections,
        match args.requests {
            Some(n) => format!("{n} requests per scenario"),
            None => format!("{} s per scenario", args.duration),
        }
    );
    println!("| scenario | req/s | p50 ms | p99 ms | p99.9 ms | errors | ratio to baseline |");
    println!("|---|---:|---:|---:|---:|---|---:|");
    let mut baseline_rps = None;
    let mut json = serde_json::Map::new();
    let mut failed = false;
    for s in scenarios {
        let o = run(&args, s, &channels, tokens.clone()).await;
        let base = *baseline_rps.get_or_insert(o.rps);
        let ratio = if base > 0.0 { o.rps / base } else { 0.0 };
        let errors: u64 = o.errors.values().sum();
        failed |= errors > 0 || o.hist.is_empty();
        let by_code = if o.errors.is_empty() {
            "0".to_owned()
        } else {
            o.errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.2} |",
            s.name(),
            o.rps,
            ms(&o.hist, 0.5),
            ms(&o.hist, 0.99),
            ms(&o.hist, 0.999),
            by_code,
            ratio
        );
        json.insert(
            s.name().into(),
            serde_json::json!({
                "rps": o.rps, "p50_ms": ms(&o.hist, 0.5), "p99_ms": ms(&o.hist, 0.99),
                "p999_ms": ms(&o.hist, 0.999), "errors": errors, "errors_by_code": o.errors,
                "ratio_to_baseline": ratio, "requests": o.hist.len(),
            }),
        );
    }
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "backend": args.backend, "concurrency": args.concurrency, "connections": args.connections,
            "scenarios": json,
        });
        if let Err(e) = std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap_or_default())
        {
            eprintln!("arogya-auth-bench: cannot write {}: {e}", path.display());
            return std::process::ExitCode::FAILURE;
        }
    }
    if failed {
        std::process::ExitCode::from(2)
    } else {
        std::process::ExitCode::SUCCESS
    }
}
