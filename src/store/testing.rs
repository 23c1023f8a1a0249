//! Private Redis servers for tests that must own their Redis: a three-master cluster on
//! loopback ports, and a single server a test may stop and start (fault tests).
//!
//! Each instance runs `/usr/bin/redis-server` (Debian package `redis-server`) as a child
//! process in its own temporary directory, on loopback ports it picked itself (bind
//! `127.0.0.1:0`, release, hand the port to Redis), so tests may start as many as they like in
//! parallel. A port another process grabbed in between is detected (the child dies with
//! "Address already in use", or a foreign server answers) and a new port is tried. Nothing is
//! persisted (`--save "" --appendonly no`), and `Drop` kills every process.
//!
//! The helpers block (they spawn processes and poll with short sleeps): call them from a
//! `multi_thread` tokio test, or wrap a call in `tokio::task::spawn_blocking` when other tasks
//! must keep running meanwhile on a current-thread runtime.

use std::fs::File;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const REDIS_CLI: &str = "/usr/bin/redis-cli";

/// How long one `redis-server` may take to answer `PING` after it was spawned.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// How long a cluster may take to agree (`cluster_state:ok` on every node) after creation.
const CLUSTER_DEADLINE: Duration = Duration::from_secs(20);
/// How long `redis-cli --cluster create` may run.
const CREATE_DEADLINE: Duration = Duration::from_secs(30);
/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(20);
/// Fresh ports tried when another process takes the one picked.
const PORT_ATTEMPTS: usize = 5;

/// Panics with an install hint unless `bin` exists.
fn require(bin: &str) {
    if !Path::new(bin).exists() {
        panic!(
            "{bin} not found: install the Debian package redis-server (apt-get install redis-server)"
        );
    }
}

/// A loopback port free at the moment of asking (the kernel's pick for `127.0.0.1:0`).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    listener.local_addr().expect("local address").port()
}

/// `n` distinct free loopback ports.
fn free_ports(n: usize) -> Vec<u16> {
    // Hold every listener until all are picked, so the kernel does not hand one out twice.
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local address").port())
        .collect()
}

/// Why a spawned `redis-server` did not come up.
enum StartError {
    /// The port was taken (by another test's process, or still held): try again.
    PortBusy,
    /// Anything else: give up with this explanation.
    Failed(String),
}

/// One `redis-server` child: its ports, directory and log.
struct Process {
    port: u16,
    /// Extra arguments (cluster mode), kept for restarts.
    extra: Vec<String>,
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Process {
    fn new(dir: &Path, port: u16, extra: Vec<String>) -> Self {
        Self {
            port,
            extra,
            dir: dir.to_owned(),
            log: dir.join(format!("redis-{port}.log")),
            child: None,
        }
    }

    /// Spawns `redis-server` on `self.port` and waits until it answers `PING` (and is the
    /// process that answers).
    fn start(&mut self) -> Result<(), StartError> {
        assert!(
            self.child.is_none(),
            "redis-server on port {} already runs",
            self.port
        );
        require(REDIS_SERVER);
        let out = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("create {}: {e}", self.log.display()));
        let err = out.try_clone().expect("clone the log file handle");
        let log_start = out.metadata().map(|m| m.len()).unwrap_or(0);
        let child = Command::new(REDIS_SERVER)
            .current_dir(&self.dir)
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--dir"])
            .arg(&self.dir)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {REDIS_SERVER} ({e}): install the Debian package redis-server \
                     (apt-get install redis-server)"
                )
            });
        self.child = Some(child);
        self.wait_up(log_start)
    }

    /// Polls until the child answers on its port (`INFO` naming its pid, so not another
    /// process that took the port), or explains why not.
    fn wait_up(&mut self, log_start: u64) -> Result<(), StartError> {
        let deadline = Instant::now() + START_DEADLINE;
        let port = self.port;
        loop {
            let child = self.child.as_mut().expect("a spawned child");
            let pid = child.id();
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    return Err(self.died(status, log_start));
                }
                Ok(None) => {}
                Err(e) => {
                    self.kill();
                    return Err(StartError::Failed(format!("wait for redis-server: {e}")));
                }
            }
            // It answers, and it is ours (another process that took the port would answer
            // too, while ours dies of EADDRINUSE).
            if query(port, &["PING"]).is_ok_and(|r| r == "PONG")
                && query(port, &["INFO", "server"]).is_ok_and(|info| {
                    info.lines()
                        .any(|l| l.trim() == format!("process_id:{pid}"))
                })
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                let log = read_from(&self.log, log_start);
                return Err(StartError::Failed(format!(
                    "redis-server on 127.0.0.1:{port} did not answer PING within {START_DEADLINE:?}; \
                     its log:\n{log}"
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    fn died(&self, status: ExitStatus, log_start: u64) -> StartError {
        let log = read_from(&self.log, log_start);
        if log.contains("Address already in use") {
            StartError::PortBusy
        } else {
            StartError::Failed(format!(
                "redis-server on 127.0.0.1:{} exited at start ({status}); its log:\n{log}",
                self.port
            ))
        }
    }

    /// Kills the child (SIGKILL) and reaps it, so its port refuses connections on return.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts on a fresh port (from `pick`) until one is not taken by another process.
    fn start_on_free_port(dir: &Path, mut pick: impl FnMut() -> (u16, Vec<String>)) -> Process {
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let (port, extra) = pick();
            let mut p = Process::new(dir, port, extra);
            match p.start() {
                Ok(()) => return p,
                Err(StartError::PortBusy) => last = format!("port {port} was taken"),
                Err(StartError::Failed(why)) => panic!("{why}"),
            }
        }
        panic!("redis-server found no free port in {PORT_ATTEMPTS} attempts ({last})");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The log written since `start` (where a start's own lines begin).
fn read_from(path: &Path, start: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    text.get(start as usize..).unwrap_or(&text).to_owned()
}

/// One command on a short-lived connection to 127.0.0.1:`port`, as text.
fn query(port: u16, args: &[&str]) -> Result<String, String> {
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{port}/")).map_err(|e| e.to_string())?;
    let mut con = client
        .get_connection_with_timeout(Duration::from_millis(500))
        .map_err(|e| e.to_string())?;
    con.set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    con.set_write_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query::<String>(&mut con).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// One server

/// A private `redis-server` a test may stop and start again on the same port.
pub struct RedisServer {
    process: Process,
    // Dropped after `process` (fields drop in order), so the server dies before its directory.
    _dir: TempDir,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers `PING`.
    pub fn start_new() -> Self {
        Self::start_with(Vec::new())
    }

    /// As [`RedisServer::start_new`], with an append-only file synced on every write, so a
    /// stop (even a kill) and start keeps the data, as a production Redis with AOF would.
    pub fn start_persistent() -> Self {
        Self::start_with(
            ["--appendonly", "yes", "--appendfsync", "always"]
                .map(String::from)
                .to_vec(),
        )
    }

    fn start_with(extra: Vec<String>) -> Self {
        require(REDIS_SERVER);
        let dir = tempfile::tempdir().expect("a temporary directory for redis-server");
        let process = Process::start_on_free_port(dir.path(), || (free_port(), extra.clone()));
        Self { process, _dir: dir }
    }

    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.process.port)
    }

    pub fn is_running(&self) -> bool {
        self.process.child.is_some()
    }

    /// Kills the server (SIGKILL, like a crash) and waits until it is gone: on return its
    /// port refuses connections, and everything it held is lost.
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Starts the server again on the same port (empty unless persistent) and waits until it answers `PING`.
    /// Retries for a while if the port is briefly busy. Does nothing if it runs.
    pub fn start(&mut self) {
        if self.is_running() {
            return;
        }
        let port = self.process.port;
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            match self.process.start() {
                Ok(()) => return,
                Err(StartError::PortBusy) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(StartError::PortBusy) => panic!(
                    "redis-server cannot restart on 127.0.0.1:{port}: the port stayed busy for \
                     {START_DEADLINE:?}"
                ),
                Err(StartError::Failed(why)) => panic!("{why}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A cluster

/// Three `redis-server` masters in cluster mode on loopback, all 16384 slots assigned.
pub struct RedisCluster {
    nodes: Vec<Process>,
    _dir: TempDir,
}

impl RedisCluster {
    pub const NODES: usize = 3;

    /// Starts three nodes, joins them with `redis-cli --cluster create` and waits until every
    /// node reports `cluster_state:ok`.
    pub fn start_new() -> Self {
        require(REDIS_SERVER);
        require(REDIS_CLI);
        let dir = tempfile::tempdir().expect("a temporary directory for the cluster");
        let nodes: Vec<Process> = (0..Self::NODES)
            .map(|_| {
                Process::start_on_free_port(dir.path(), || {
                    // The cluster bus gets its own free port (`--cluster-port`), since the
                    // default (port + 10000) may be out of range or taken.
                    let ports = free_ports(2);
                    let (port, bus) = (ports[0], ports[1]);
                    let extra = [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &format!("nodes-{port}.conf"),
                        "--cluster-node-timeout",
                        "2000",
                        "--cluster-port",
                        &bus.to_string(),
                    ]
                    .map(str::to_owned)
                    .to_vec();
                    (port, extra)
                })
            })
            .collect();
        let cluster = Self { nodes, _dir: dir };
        cluster.create();
        cluster.wait_ok();
        cluster
    }

    /// `redis-cli --cluster create …`, with a deadline.
    fn create(&self) {
        let log_path = self._dir.path().join("cluster-create.log");
        let out = File::create(&log_path).expect("create cluster-create.log");
        let err = out.try_clone().expect("clone the log file handle");
        let mut cli = Command::new(REDIS_CLI);
        cli.arg("--cluster").arg("create");
        for n in &self.nodes {
            cli.arg(format!("127.0.0.1:{}", n.port));
        }
        let mut child = cli
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {REDIS_CLI} ({e}): install the Debian package redis-server \
                     (apt-get install redis-server)"
                )
            });
        let deadline = Instant::now() + CREATE_DEADLINE;
        let status = loop {
            match child.try_wait().expect("wait for redis-cli") {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "redis-cli --cluster create did not finish within {CREATE_DEADLINE:?}; \
                         its output:\n{}",
                        read_from(&log_path, 0)
                    );
                }
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        if !status.success() {
            panic!(
                "redis-cli --cluster create failed ({status}); its output:\n{}",
                read_from(&log_path, 0)
            );
        }
    }

    /// Waits until every node sees a healthy cluster of all its nodes with every slot served.
    fn wait_ok(&self) {
        let deadline = Instant::now() + CLUSTER_DEADLINE;
        let want_nodes = format!("cluster_known_nodes:{}", Self::NODES);
        loop {
            let mut pending = Vec::new();
            for n in &self.nodes {
                match query(n.port, &["CLUSTER", "INFO"]) {
                    Ok(info) => {
                        let has = |l: &str| info.lines().any(|x| x.trim() == l);
                        if !(has("cluster_state:ok")
                            && has("cluster_slots_assigned:16384")
                            && has(&want_nodes))
                        {
                            pending.push(format!("127.0.0.1:{}:\n{}", n.port, info.trim()));
                        }
                    }
                    Err(e) => pending.push(format!("127.0.0.1:{}: {e}", n.port)),
                }
            }
            if pending.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the Redis cluster was not ok within {CLUSTER_DEADLINE:?}; not ok:\n{}",
                    pending.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// `redis://127.0.0.1:P1/,redis://127.0.0.1:P2/,redis://127.0.0.1:P3/`, for
    /// `RedisConn::connect(urls, true, timeout)`.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}/", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
    }
}
