//! Configuration tests: each refusal and override, in a figment::Jail.
#![allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
use super::*;
use figment::Jail;

fn load() -> Result<Config, ConfigError> {
    Config::load(None)
}

#[test]
fn defaults_are_the_design_defaults() {
    Jail::expect_with(|_| {
        let c = load().expect("defaults load");
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:50051");
        assert_eq!(
            (
                c.otp.ttl_seconds,
                c.otp.max_attempts,
                c.otp.resend_cooldown_seconds
            ),
            (600, 5, 60)
        );
        assert!(c.rate_limit.enabled);
        assert_eq!(c.sms.provider, SmsProviderKind::Log);
        assert_eq!(
            c.cors.allowed_origins,
            vec!["http://localhost:5173".to_string()]
        );
        assert!(c.redis_url.is_none() && c.database_url.is_none());
        Ok(())
    });
}

#[test]
fn environment_overrides_nested_keys_and_lists() {
    Jail::expect_with(|j| {
        j.set_env("AROGYA_OTP__TTL_SECONDS", "120");
        j.set_env("AROGYA_RATE_LIMIT__ENABLED", "false");
        j.set_env(
            "AROGYA_CORS__ALLOWED_ORIGINS",
            "https://a.example.in, https://b.example.in",
        );
        j.set_env("AROGYA_TRUSTED_PROXIES", "10.0.0.0/8,192.168.1.1/32");
        j.set_env("AROGYA_LISTEN_ADDR", "0.0.0.0:6000");
        j.set_env("DATABASE_URL", "postgres://x@localhost/y");
        let c = load().expect("loads");
        assert_eq!(c.otp.ttl_seconds, 120);
        assert!(!c.rate_limit.enabled);
        assert_eq!(c.cors.allowed_origins.len(), 2);
        assert!(c.is_trusted_proxy("10.1.2.3".parse().unwrap()));
        assert!(!c.is_trusted_proxy("11.1.2.3".parse().unwrap()));
        assert_eq!(c.listen_addr.port(), 6000);
        assert_eq!(c.database_url.as_deref(), Some("postgres://x@localhost/y"));
        Ok(())
    });
}

#[test]
fn file_is_overridden_by_environment() {
    Jail::expect_with(|j| {
        j.create_file("a.toml", "[otp]\nttl_seconds = 300\nmax_attempts = 3\n")?;
        j.set_env("AROGYA_OTP__MAX_ATTEMPTS", "4");
        let c = Config::load(Some(Path::new("a.toml"))).expect("loads");
        assert_eq!((c.otp.ttl_seconds, c.otp.max_attempts), (300, 4));
        Ok(())
    });
}

#[test]
fn a_bad_value_names_its_environment_variable() {
    Jail::expect_with(|j| {
        j.set_env("AROGYA_OTP__TTL_SECONDS", "ten minutes");
        let err = load().expect_err("must fail").to_string();
        assert!(err.contains("AROGYA_OTP__TTL_SECONDS"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
        Ok(())
    });
}

#[test]
fn an_unknown_key_in_the_file_is_refused() {
    Jail::expect_with(|j| {
        j.create_file("a.toml", "[otp]\nttl_secnds = 300\n")?;
        let err = Config::load(Some(Path::new("a.toml")))
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("ttl_secnds"), "{err}");
        Ok(())
    });
}

#[test]
fn a_bad_origin_or_proxy_is_refused() {
    Jail::expect_with(|j| {
        j.set_env("AROGYA_CORS__ALLOWED_ORIGINS", "localhost:5173");
        let err = load().expect_err("must fail").to_string();
        assert!(err.contains("AROGYA_CORS__ALLOWED_ORIGINS"), "{err}");
        Ok(())
    });
    Jail::expect_with(|j| {
        j.set_env("AROGYA_TRUSTED_PROXIES", "10.0.0.0/99");
        let err = load().expect_err("must fail").to_string();
        assert!(err.contains("AROGYA_TRUSTED_PROXIES"), "{err}");
        Ok(())
    });
}

#[test]
fn production_refuses_every_embedded_default_by_name() {
    Jail::expect_with(|j| {
        j.set_env("AROGYA_ENV", "production");
        let err = load().expect_err("must refuse").to_string();
        for key in [
            "AROGYA_SMS__PROVIDER",
            "AROGYA_OTP__SECRET",
            "AROGYA_JWT__PRIVATE_KEY_FILE",
            "REDIS_URL",
            "DATABASE_URL",
            "AROGYA_CORS__ALLOWED_ORIGINS",
        ] {
            assert!(err.contains(key), "{key} missing from: {err}");
        }
        Ok(())
    });
}

#[test]
fn production_names_only_what_is_still_missing() {
    Jail::expect_with(|j| {
        j.set_env("AROGYA_ENV", "production");
        twilio_with_dlt(j);
        j.set_env("AROGYA_OTP__SECRET", "0123456789abcdef0123456789abcdef");
        j.set_env("AROGYA_CORS__ALLOWED_ORIGINS", "https://vault.example.in");
        j.set_env("REDIS_URL", "redis://127.0.0.1/");
        j.set_env("DATABASE_URL", "postgres://postgres@127.0.0.1/test");
        let err = load().expect_err("key file still missing").to_string();
        assert!(err.contains("AROGYA_JWT__PRIVATE_KEY_FILE"), "{err}");
        assert!(!err.contains("AROGYA_SMS__PROVIDER"), "{err}");
        assert!(!err.contains("REDIS_URL"), "{err}");
        Ok(())
    });
}

#[test]
fn durations_are_bounded_so_nothing_overflows() {
    Jail::expect_with(|j| {
        j.set_env(
            "AROGYA_SESSION__ABSOLUTE_TTL_SECONDS",
            "18446744073709551615",
        );
        let err = load().expect_err("must fail").to_string();
        assert!(
            err.contains("AROGYA_SESSION__ABSOLUTE_TTL_SECONDS"),
            "{err}"
        );
        Ok(())
    });
    for (k, v) in [
        ("AROGYA_SERVER__REQUEST_TIMEOUT_SECONDS", "0"),
        ("AROGYA_SERVER__CONCURRENCY_LIMIT", "0"),
        ("AROGYA_OTP__TTL_SECONDS", "0"),
    ] {
        Jail::expect_with(|j| {
            j.set_env(k, v);
            let err = load().expect_err("must fail").to_string();
            assert!(err.contains(k), "{err}");
            Ok(())
        });
    }
}

#[test]
fn production_refuses_disabled_limits_and_trusting_everyone() {
    Jail::expect_with(|j| {
        j.set_env("AROGYA_ENV", "production");
        j.set_env("AROGYA_RATE_LIMIT__ENABLED", "false");
        j.set_env("AROGYA_TRUSTED_PROXIES", "10.0.0.0/8, 0.0.0.0/0");
        let err = load().expect_err("must refuse").to_string();
        assert!(err.contains("AROGYA_RATE_LIMIT__ENABLED"), "{err}");
        assert!(err.contains("AROGYA_TRUSTED_PROXIES"), "{err}");
        Ok(())
    });
}

#[test]
fn a_rejected_secret_is_not_echoed() {
    Jail::expect_with(|j| {
        j.set_env("AROGYA_OTP__SECRET", "[1, 2]");
        let err = load().expect_err("must fail").to_string();
        assert!(
            err.contains("AROGYA_OTP__SECRET") && err.contains("not shown"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn a_short_otp_secret_is_refused() {
    Jail::expect_with(|j| {
        j.set_env("AROGYA_OTP__SECRET", "short");
        let err = load().expect_err("must fail").to_string();
        assert!(
            err.contains("AROGYA_OTP__SECRET") && !err.contains("short\""),
            "{err}"
        );
        Ok(())
    });
}

/// A complete Twilio + DLT setup that renders the default message.
fn twilio_with_dlt(j: &mut Jail) {
    j.set_env("AROGYA_SMS__PROVIDER", "twilio");
    j.set_env(
        "AROGYA_SMS__TWILIO__ACCOUNT_SID",
        "AC00000000000000000000000000000000",
    );
    j.set_env("AROGYA_SMS__TWILIO__AUTH_TOKEN", "secret-token-value");
    j.set_env("AROGYA_SMS__TWILIO__FROM", "+15005550006");
    j.set_env(
        "AROGYA_SMS__DLT__TEMPLATE",
        "{#var#} is your {#var#} sign-in code. It expires in {#var#} min. Never share it with anyone.",
    );
    j.set_env("AROGYA_SMS__DLT__TEMPLATE_ID", "1107161234567890123");
    j.set_env("AROGYA_SMS__DLT__ENTITY_ID", "1101161234567890123");
    j.set_env("AROGYA_SMS__DLT__SENDER", "AROGYA");
}

#[test]
fn a_real_provider_needs_each_credential_by_name() {
    for (unset, name) in [
        (
            "AROGYA_SMS__TWILIO__ACCOUNT_SID",
            "AROGYA_SMS__TWILIO__ACCOUNT_SID",
        ),
        (
            "AROGYA_SMS__TWILIO__AUTH_TOKEN",
            "AROGYA_SMS__TWILIO__AUTH_TOKEN",
        ),
        (
            "AROGYA_SMS__DLT__TEMPLATE_ID",
            "AROGYA_SMS__DLT__TEMPLATE_ID",
        ),
        ("AROGYA_SMS__DLT__ENTITY_ID", "AROGYA_SMS__DLT__ENTITY_ID"),
        ("AROGYA_SMS__DLT__SENDER", "AROGYA_SMS__DLT__SENDER"),
    ] {
        Jail::expect_with(|j| {
            twilio_with_dlt(j);
            j.set_env(unset, "");
            let err = load().expect_err("must refuse").to_string();
            assert!(err.contains(name), "{unset}: {err}");
            assert!(!err.contains("secret-token-value"), "{err}");
            Ok(())
        });
    }
    Jail::expect_with(|j| {
        twilio_with_dlt(j);
        let c = load().expect("complete");
        assert_eq!(
            c.sms.twilio.from.as_deref(),
            Some("+15005550006"),
            "the + survives the environment"
        );
        assert_eq!(
            c.sms.dlt.template_id.as_deref(),
            Some("1107161234567890123")
        );
        j.set_env(
            "AROGYA_SMS__TWILIO__MESSAGING_SERVICE_SID",
            "MG00000000000000000000000000000000",
        );
        let err = load().expect_err("both senders").to_string();
        assert!(err.contains("exactly one"), "{err}");
        Ok(())
    });
    Jail::expect_with(|j| {
        j.set_env("AROGYA_SMS__PROVIDER", "msg91");
        let err = load().expect_err("must refuse").to_string();
        assert!(err.contains("AROGYA_SMS__MSG91__AUTH_KEY"), "{err}");
        Ok(())
    });
}

#[test]
fn a_message_that_does_not_match_the_dlt_template_is_refused_at_start_up() {
    Jail::expect_with(|j| {
        twilio_with_dlt(j);
        j.set_env(
            "AROGYA_SMS__TEMPLATE",
            "{code} is your {app} login code. It expires in {minutes} min.",
        );
        let err = load().expect_err("mismatch").to_string();
        assert!(
            err.contains("does not match AROGYA_SMS__DLT__TEMPLATE"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn autofill_lines_must_be_in_the_registered_template_and_fit_one_sms() {
    Jail::expect_with(|j| {
        twilio_with_dlt(j);
        j.set_env("AROGYA_SMS__WEBOTP_HOST", "vault.example.in");
        let err = load()
            .expect_err("the WebOTP line is not registered")
            .to_string();
        assert!(err.contains("DLT"), "{err}");
        j.set_env(
            "AROGYA_SMS__DLT__TEMPLATE",
            "{#var#} is your {#var#} sign-in code. It expires in {#var#} min. Never share it with anyone.\n\n@{#var#} #{#var#} {#var#}",
        );
        j.set_env("AROGYA_SMS__ANDROID_APP_HASH", "FA+9qCX9VSu");
        load().expect("registered with the autofill line");
        j.set_env("AROGYA_SMS__APP_NAME", "A".repeat(30));
        j.set_env("AROGYA_SMS__WEBOTP_HOST", format!("{}.in", "v".repeat(27)));
        let err = load().expect_err("too long").to_string();
        assert!(err.contains("SMS parts"), "{err}");
        j.set_env("AROGYA_SMS__ANDROID_APP_HASH", "short");
        let err = load().expect_err("bad hash").to_string();
        assert!(err.contains("AROGYA_SMS__ANDROID_APP_HASH"), "{err}");
        Ok(())
    });
}

#[test]
fn a_fallback_must_be_a_second_real_provider() {
    Jail::expect_with(|j| {
        j.set_env("AROGYA_SMS__FALLBACK", "twilio");
        let err = load().expect_err("log primary").to_string();
        assert!(err.contains("AROGYA_SMS__FALLBACK"), "{err}");
        twilio_with_dlt(j);
        let err = load().expect_err("same provider").to_string();
        assert!(err.contains("must differ"), "{err}");
        j.set_env("AROGYA_SMS__FALLBACK", "msg91");
        let err = load().expect_err("msg91 credentials").to_string();
        assert!(err.contains("AROGYA_SMS__MSG91__AUTH_KEY"), "{err}");
        j.set_env("AROGYA_SMS__MSG91__AUTH_KEY", "k");
        j.set_env("AROGYA_SMS__MSG91__TEMPLATE_ID", "6512a0c1d6fc05");
        load().expect("twilio then msg91");
        Ok(())
    });
}

#[test]
fn delivery_must_fit_in_one_request_and_base_urls_must_be_https() {
    Jail::expect_with(|j| {
        twilio_with_dlt(j);
        j.set_env("AROGYA_SMS__TIMEOUT_MS", "5000");
        j.set_env("AROGYA_SMS__RETRIES", "2");
        let err = load()
            .expect_err("15 s of delivery in a 10 s request")
            .to_string();
        assert!(
            err.contains("AROGYA_SERVER__REQUEST_TIMEOUT_SECONDS"),
            "{err}"
        );
        j.set_env("AROGYA_SERVER__REQUEST_TIMEOUT_SECONDS", "20");
        load().expect("fits now");
        j.set_env("AROGYA_SMS__TWILIO__BASE_URL", "http://api.twilio.com");
        let err = load().expect_err("plain http").to_string();
        assert!(err.contains("AROGYA_SMS__TWILIO__BASE_URL"), "{err}");
        j.set_env("AROGYA_SMS__TWILIO__BASE_URL", "http://127.0.0.1:9999");
        load().expect("loopback fakes are fine");
        j.set_env("AROGYA_SMS__FALLBACK", "");
        assert!(load().expect("empty means none").sms.fallback.is_none());
        j.set_env("AROGYA_SMS__WEBOTP_HOST", "vault.example.in\n@evil");
        let err = load().expect_err("newline in host").to_string();
        assert!(err.contains("AROGYA_SMS__WEBOTP_HOST"), "{err}");
        Ok(())
    });
}

#[test]
fn the_start_up_check_renders_with_the_real_code_lifetime() {
    Jail::expect_with(|j| {
        twilio_with_dlt(j);
        // Exactly 160 characters with "10 min"; "1440 min" makes two SMS parts.
        let pad = "x".repeat(160 - "000000 is valid 10 min. App ".len());
        j.set_env("AROGYA_SMS__APP_NAME", "App");
        j.set_env(
            "AROGYA_SMS__TEMPLATE",
            format!("{{code}} is valid {{minutes}} min. {{app}} {pad}"),
        );
        j.set_env(
            "AROGYA_SMS__DLT__TEMPLATE",
            format!("{{#var#}} is valid {{#var#}} min. {{#var#}} {pad}"),
        );
        load().expect("fits with the default 10 minutes");
        j.set_env("AROGYA_OTP__TTL_SECONDS", "86400");
        let err = load()
            .expect_err("1440 minutes do not fit one SMS")
            .to_string();
        assert!(err.contains("SMS parts"), "{err}");
        Ok(())
    });
}

#[test]
fn kubernetes_service_links_are_ignored_but_a_misspelt_setting_is_not() {
    Jail::expect_with(|j| {
        // What Kubernetes injects for a Service named `arogya-auth` (and one named `arogya-web`).
        for (k, v) in [
            ("AROGYA_AUTH_SERVICE_HOST", "10.96.0.12"),
            ("AROGYA_AUTH_SERVICE_PORT", "50051"),
            ("AROGYA_AUTH_SERVICE_PORT_GRPC", "50051"),
            ("AROGYA_AUTH_PORT", "tcp://10.96.0.12:50051"),
            ("AROGYA_AUTH_PORT_50051_TCP", "tcp://10.96.0.12:50051"),
            ("AROGYA_AUTH_PORT_50051_TCP_PROTO", "tcp"),
            ("AROGYA_AUTH_PORT_50051_TCP_PORT", "50051"),
            ("AROGYA_AUTH_PORT_50051_TCP_ADDR", "10.96.0.12"),
            ("AROGYA_WEB_SERVICE_HOST", "10.96.0.13"),
            ("AROGYA_WEB_PORT_443_UDP_ADDR", "10.96.0.13"),
        ] {
            j.set_env(k, v);
        }
        j.set_env("AROGYA_OTP__TTL_SECONDS", "300");
        let cfg = load().expect("service links ignored");
        assert_eq!(cfg.otp.ttl_seconds, 300);
        Ok(())
    });
    // A Service named exactly `arogya`.
    Jail::expect_with(|j| {
        for (k, v) in [
            ("AROGYA_SERVICE_HOST", "10.96.0.14"),
            ("AROGYA_SERVICE_PORT", "50051"),
            ("AROGYA_PORT", "tcp://10.96.0.14:50051"),
            ("AROGYA_PORT_50051_TCP_ADDR", "10.96.0.14"),
        ] {
            j.set_env(k, v);
        }
        load().expect("service links of `arogya` ignored");
        Ok(())
    });
    for typo in [
        "AROGYA_LISTEN_ADR",
        "AROGYA_OTP__TTL_SECONDS_PORT",
        "AROGYA_SERVER_PORT",
        "AROGYA_ADMIN_PORT",
        "AROGYA_AUTH_PORT_X_TCP",
    ] {
        Jail::expect_with(|j| {
            // A real Service link beside it does not excuse a misspelt setting.
            j.set_env("AROGYA_AUTH_SERVICE_HOST", "10.96.0.12");
            j.set_env(typo, "1");
            let err = load().expect_err(typo).to_string();
            assert!(
                err.to_ascii_uppercase().contains(&typo[7..]) || err.contains("unknown"),
                "{typo}: {err}"
            );
            Ok(())
        });
    }
}
