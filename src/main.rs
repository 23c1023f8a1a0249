//! The `arogya-auth` binary: parse the command line, load config, start. Everything else is
//! in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use arogya_auth::app::{App, shutdown_signal};
use arogya_auth::config::Config;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "arogya-auth",
    version,
    about = "Phone-number sign-in for Arogya Vault (gRPC + gRPC-Web)"
)]
struct Cli {
    /// TOML config file; the environment (AROGYA_…) overrides it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print a new Ed25519 signing key (PKCS#8 PEM) for AROGYA_JWT__PRIVATE_KEY_FILE.
    GenKey,
    /// Print the public half (SPKI PEM) of a signing key read from FILE, or from standard
    /// input: what AROGYA_JWT__VERIFY_KEYS needs to publish the next key ahead of a rotation.
    PublicKey {
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Print the effective configuration (secrets masked) and every problem with it; exit
    /// non-zero if it is invalid, or unsafe for AROGYA_ENV=production.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Two rustls crypto providers are compiled in (ring via sqlx, aws-lc via reqwest and
    // jsonwebtoken); pick one for the process before anything uses TLS.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    if let Some(Command::GenKey) = cli.command {
        return match arogya_auth::session::KeyRing::generate_pem() {
            Ok(pem) => {
                emit(&pem);
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string()),
        };
    }
    if let Some(Command::PublicKey { file }) = &cli.command {
        return public_key(file.as_deref());
    }
    if let Some(Command::CheckConfig) = cli.command {
        return check_config(cli.config.as_deref());
    }
    // `migrate` needs only the database: a migration Job need not carry SMS credentials or
    // keys, so production's refusals (which are about serving) do not apply to it.
    let loaded = match cli.command {
        Some(Command::Migrate) => Config::inspect(cli.config.as_deref()),
        _ => Config::load(cli.config.as_deref()),
    };
    let config = match loaded {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    // The OTLP exporter's gRPC channel lives on this runtime.
    let telemetry = match runtime.block_on(async { arogya_auth::telemetry::init(&config) }) {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let result = runtime.block_on(async move {
        let shutdown = shutdown_signal();
        match cli.command {
            Some(Command::Migrate) => {
                let url = arogya_auth::db::database_url(
                    config.database_url.as_deref(),
                    &config.database.sqlite_path,
                );
                let conn = arogya_auth::db::connect(&url)
                    .await
                    .map_err(|e| e.to_string())?;
                arogya_auth::db::migrate(&conn)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!("migrations applied");
                Ok(())
            }
            _ => {
                let app = App::build(config).await.map_err(|e| e.to_string())?;
                app.run_until(shutdown).await.map_err(|e| e.to_string())
            }
        }
    });
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn check_config(file: Option<&std::path::Path>) -> ExitCode {
    let config = match Config::inspect(file) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    print!("{}", config.masked_report());
    // The keys are read and parsed as the server would, so a bad PEM fails here, not at start.
    match arogya_auth::session::KeyRing::from_config(&config.jwt) {
        Ok(keys) => println!(
            "# signing key: {} (kid {}); also accepted: {}",
            keys.source,
            keys.signing_kid(),
            match &keys.kids()[1..] {
                [] => "none".to_owned(),
                others => others.join(", "),
            }
        ),
        Err(e) => return fail(&format!("signing keys: {e}")),
    }
    let problems = config.production_problems();
    if config.is_production() {
        if problems.is_empty() {
            println!("# ok: safe for production");
            return ExitCode::SUCCESS;
        }
        for p in &problems {
            println!("# unsafe: {p}");
        }
        return fail(&format!(
            "{} setting(s) unsafe for production (listed above)",
            problems.len()
        ));
    }
    for p in &problems {
        println!("# would be refused in production: {p}");
    }
    println!("# ok: valid for development");
    ExitCode::SUCCESS
}

fn public_key(file: Option<&std::path::Path>) -> ExitCode {
    let text = match file {
        Some(path) => std::fs::read(path).map_err(|e| format!("{}: {e}", path.display())),
        None => {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                .map(|_| buf)
                .map_err(|e| format!("standard input: {e}"))
        }
    };
    match text
        .and_then(|t| arogya_auth::session::KeyRing::public_pem(&t).map_err(|e| e.to_string()))
    {
        Ok(pem) => {
            emit(&pem);
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// Writes to standard output, quietly ending if the reader went away (`gen-key | head -1`).
fn emit(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(text.as_bytes());
}

fn fail(message: &str) -> ExitCode {
    eprintln!("arogya-auth: {message}");
    ExitCode::FAILURE
}
