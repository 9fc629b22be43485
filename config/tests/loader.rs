//! The config loader: defaults, file, overrides and validation.

use config::{Config, ConfigError, EgressMode, LogFormat, Overrides};

#[test]
fn no_config_at_all_is_a_valid_loopback_default() {
    // Requirement: running with no config binds loopback and validates.
    let config = Config::default();
    assert!(config.http_listen.ip().is_loopback());
    assert!(config.udp_listen.ip().is_loopback());
    config.validate().expect("defaults are valid");
    assert_eq!(config.candidate_ips(), vec![config.udp_listen.ip()]);
}

#[test]
fn file_values_replace_defaults_and_missing_ones_keep_them() {
    // Requirement: a partial TOML file only changes what it names.
    let config = Config::from_toml(
        "http_listen = \"127.0.0.1:9000\"\nmax_participants_per_room = 7\n[[ice_servers]]\nurls = [\"stun:127.0.0.1:3478\"]\n",
        "test.toml",
    )
    .expect("parses");
    assert_eq!(config.http_listen.port(), 9000);
    assert_eq!(config.max_participants_per_room, 7);
    assert_eq!(config.ice_servers.len(), 1);
    assert_eq!(config.udp_listen, Config::default().udp_listen);
}

#[test]
fn overrides_win_over_the_file() {
    // Requirement: flags and environment override the file.
    let file = Config::from_toml("http_listen = \"127.0.0.1:9000\"\n", "t.toml").expect("parses");
    let config = Overrides {
        http_listen: Some("127.0.0.1:9100".parse().expect("addr")),
        udp_listen: None,
        media_threads: Some(3),
        ice_tcp_listen: Some("127.0.0.1:50001".parse().expect("addr")),
        advertise_ips: vec!["10.1.2.3".parse().expect("ip")],
        log_format: Some(LogFormat::Json),
        egress: Some(EgressMode::Str0m),
        metrics_listen: Some("127.0.0.1:0".parse().expect("addr")),
        admin_token: Some("0123456789abcdef".to_owned()),
        auth_secret: None,
        turn_urls: vec!["turn:203.0.113.5:3478".to_owned()],
        turn_secret: Some("shared".to_owned()),
        redis_url: Some("redis://127.0.0.1:6379/".to_owned()),
        cluster_secret: Some("c".repeat(32)),
        node_id: Some("node-a".to_owned()),
        public_url: Some("ws://10.0.0.1:8080/ws".to_owned()),
        insecure: false,
        allowed_origins: vec!["https://app.example.com".to_owned()],
    }
    .apply(file);
    assert_eq!(config.allowed_origins, ["https://app.example.com"]);
    assert_eq!(config.redis_url.as_deref(), Some("redis://127.0.0.1:6379/"));
    assert_eq!(config.ice_servers.len(), 1);
    assert_eq!(config.ice_servers[0].secret.as_deref(), Some("shared"));
    assert_eq!(config.ice_servers[0].credential_ttl_secs, 6 * 3600);
    assert_eq!(config.node_id.as_deref(), Some("node-a"));
    assert_eq!(config.public_url.as_deref(), Some("ws://10.0.0.1:8080/ws"));
    assert_eq!(config.metrics_listen.port(), 0);
    assert_eq!(config.admin_token.as_deref(), Some("0123456789abcdef"));
    assert!(config.admin_needs_credential());
    assert_eq!(config.http_listen.port(), 9100);
    assert_eq!(config.media_threads, 3);
    assert_eq!(config.ice_tcp_listen.map(|a| a.port()), Some(50001));
    assert_eq!(config.udp_listen, Config::default().udp_listen);
    assert_eq!(
        config.candidate_ips(),
        vec!["10.1.2.3".parse::<std::net::IpAddr>().expect("ip")]
    );
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.egress, EgressMode::Str0m);
    assert_eq!(Config::default().egress, EgressMode::Native);
}

#[test]
fn bad_files_are_refused_with_the_reason() {
    // Requirement: a typo or a wrong type in the file is an error naming the problem, not silently ignored.
    let cases = [
        ("htp_listen = \"127.0.0.1:1\"", "unknown field"),
        ("http_listen = 5", "http_listen"),
        ("http_listen = \"nonsense\"", "http_listen"),
        ("log_format = \"xml\"", "log_format"),
        ("egress = \"fast\"", "egress"),
    ];
    for (text, needle) in cases {
        let err = Config::from_toml(text, "bad.toml").expect_err(text);
        let shown = err.to_string();
        assert!(matches!(err, ConfigError::Parse { .. }), "{shown}");
        assert!(
            shown.contains("bad.toml") && shown.contains(needle),
            "{shown}"
        );
    }
}

#[test]
fn a_missing_file_is_a_read_error() {
    // Requirement: a config path that does not exist is reported with its path.
    let err =
        Config::from_file(std::path::Path::new("/nonexistent/sfu.toml")).expect_err("missing");
    assert!(err.to_string().contains("/nonexistent/sfu.toml"));
}

/// A TURN server entry with a shared secret, valid as it is.
fn turn_with_secret() -> config::IceServerConfig {
    config::IceServerConfig {
        urls: vec!["turn:turn.example.com:3478".to_owned()],
        username: None,
        credential: None,
        secret: Some("shared-with-coturn".to_owned()),
        credential_ttl_secs: 3600,
    }
}

#[test]
fn a_turn_server_with_a_shared_secret_parses_with_a_default_lifetime() {
    // Requirement: `secret` is all a TURN REST entry needs; credentials live a day by default.
    let text = "[[ice_servers]]\nurls = [\"turn:turn.example.com:3478\"]\nsecret = \"shared\"\n";
    let path = std::env::temp_dir().join(format!("sfu-turn-{}.toml", std::process::id()));
    std::fs::write(&path, text).expect("write");
    let config = Config::from_file(&path).expect("valid");
    std::fs::remove_file(&path).expect("remove");
    assert_eq!(config.ice_servers[0].secret.as_deref(), Some("shared"));
    assert_eq!(config.ice_servers[0].credential_ttl_secs, 6 * 3600);
    let valid = Config {
        ice_servers: vec![turn_with_secret()],
        ..Config::default()
    };
    valid.validate().expect("a secret alone is valid");
}

#[test]
fn validation_rejects_each_impossible_value() {
    // Requirement: validate() refuses every out-of-range value with a message naming the field.
    type Mutation = Box<dyn Fn(&mut Config)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "advertise_ips",
            Box::new(|c| c.advertise_ips = vec!["0.0.0.0".parse().expect("ip")]),
        ),
        ("max_message_bytes", Box::new(|c| c.max_message_bytes = 10)),
        ("media_threads", Box::new(|c| c.media_threads = 0)),
        (
            "media_threads",
            Box::new(|c| c.media_threads = config::MAX_MEDIA_THREADS + 1),
        ),
        (
            "media_threads",
            Box::new(|c| {
                c.udp_listen = "127.0.0.1:65535".parse().expect("addr");
                c.media_threads = 2;
            }),
        ),
        (
            "max_data_message_bytes",
            Box::new(|c| c.max_data_message_bytes = 0),
        ),
        (
            "max_participants_per_room",
            Box::new(|c| c.max_participants_per_room = 0),
        ),
        (
            "keyframe_request_interval_ms",
            Box::new(|c| c.keyframe_request_interval_ms = 60_000),
        ),
        (
            "max_unjoined_connections",
            Box::new(|c| c.max_unjoined_connections = 0),
        ),
        (
            "max_unjoined_connections",
            Box::new(|c| c.max_unjoined_connections = usize::MAX),
        ),
        (
            "ice_connect_timeout_secs",
            Box::new(|c| c.ice_connect_timeout_secs = 0),
        ),
        (
            "ice_connect_timeout_secs",
            Box::new(|c| c.ice_connect_timeout_secs = u64::MAX),
        ),
        (
            "ice_servers",
            Box::new(|c| {
                c.ice_servers = vec![config::IceServerConfig {
                    urls: vec![],
                    ..turn_with_secret()
                }]
            }),
        ),
        (
            "not both",
            Box::new(|c| {
                c.ice_servers = vec![config::IceServerConfig {
                    username: Some("u".to_owned()),
                    ..turn_with_secret()
                }]
            }),
        ),
        (
            "secret is empty",
            Box::new(|c| {
                c.ice_servers = vec![config::IceServerConfig {
                    secret: Some(String::new()),
                    ..turn_with_secret()
                }]
            }),
        ),
        (
            "credential_ttl_secs",
            Box::new(|c| {
                c.ice_servers = vec![config::IceServerConfig {
                    credential_ttl_secs: 0,
                    ..turn_with_secret()
                }]
            }),
        ),
        (
            "admin_token",
            Box::new(|c| c.admin_token = Some("short".to_owned())),
        ),
        (
            "auth_secret",
            Box::new(|c| c.auth_secret = Some("short".to_owned())),
        ),
        ("max_rooms", Box::new(|c| c.max_rooms = 0)),
        (
            "ws_idle_timeout_secs",
            Box::new(|c| c.ws_idle_timeout_secs = 1),
        ),
        (
            "max_tracks_per_participant",
            Box::new(|c| c.max_tracks_per_participant = 0),
        ),
        ("max_pending_joins", Box::new(|c| c.max_pending_joins = 0)),
        (
            "max_messages_per_second",
            Box::new(|c| c.max_messages_per_second = 0),
        ),
        ("max_sdp_bytes", Box::new(|c| c.max_sdp_bytes = 100)),
        ("cluster_ttl_secs", Box::new(|c| c.cluster_ttl_secs = 1)),
        (
            "public_url",
            Box::new(|c| c.public_url = Some("http://x/ws".to_owned())),
        ),
        (
            "public_url",
            Box::new(|c| {
                c.redis_url = Some("redis://127.0.0.1/".to_owned());
                c.cluster_secret = Some("c".repeat(32));
                c.http_listen = "0.0.0.0:8080".parse().expect("addr");
                c.auth_secret = Some("x".repeat(32));
            }),
        ),
        ("max_sdp_bytes", Box::new(|c| c.max_sdp_bytes = 1 << 30)),
        (
            "auth_secret",
            Box::new(|c| c.http_listen = "0.0.0.0:8080".parse().expect("addr")),
        ),
        (
            "allowed_origins",
            Box::new(|c| c.allowed_origins = vec!["https://app.example.com/path".to_owned()]),
        ),
        (
            "allowed_origins",
            Box::new(|c| c.allowed_origins = vec!["app.example.com".to_owned()]),
        ),
        (
            "cluster_secret",
            Box::new(|c| c.redis_url = Some("redis://127.0.0.1/".to_owned())),
        ),
        (
            "cluster_secret",
            Box::new(|c| {
                c.redis_url = Some("redis://127.0.0.1/".to_owned());
                c.cluster_secret = Some("short".to_owned());
            }),
        ),
        (
            "redis_url",
            Box::new(|c| {
                c.redis_url = Some("http://127.0.0.1/".to_owned());
                c.cluster_secret = Some("c".repeat(32));
            }),
        ),
    ];
    for (field, mutate) in cases {
        let mut config = Config::default();
        mutate(&mut config);
        let err = config.validate().expect_err(field);
        assert!(err.to_string().contains(field), "{err} should name {field}");
    }
}

#[test]
fn a_wildcard_bind_with_advertised_ips_is_valid() {
    // Requirement: binding 0.0.0.0 works once the public address and the credentials are configured.
    let config = Config {
        udp_listen: "0.0.0.0:50000".parse().expect("addr"),
        advertise_ips: vec!["192.0.2.10".parse().expect("ip")],
        ..secured()
    };
    config.validate().expect("valid");
}

/// The defaults with both credentials set.
fn secured() -> Config {
    Config {
        auth_secret: Some("0123456789abcdef0123456789abcdef".to_owned()),
        admin_token: Some("0123456789abcdef".to_owned()),
        ..Config::default()
    }
}

#[test]
fn a_server_reachable_from_elsewhere_needs_both_credentials_or_insecure() {
    // Requirement: media bound to or advertised on a non-loopback address, a non-loopback
    // public_url or HTTP/ICE-TCP listener makes the server reachable from other hosts: it
    // refuses to start without auth_secret and admin_token unless insecure, naming what to set.
    type Change = Box<dyn Fn(&mut Config)>;
    let reachable: Vec<(&str, Change)> = vec![
        (
            "http_listen",
            Box::new(|c| c.http_listen = "0.0.0.0:8080".parse().expect("addr")),
        ),
        (
            "udp_listen",
            Box::new(|c| c.udp_listen = "0.0.0.0:50000".parse().expect("addr")),
        ),
        (
            "udp_listen",
            Box::new(|c| c.udp_listen = "10.0.0.5:50000".parse().expect("addr")),
        ),
        (
            "ice_tcp_listen",
            Box::new(|c| c.ice_tcp_listen = Some("0.0.0.0:50000".parse().expect("addr"))),
        ),
        (
            "advertise_ips",
            Box::new(|c| c.advertise_ips = vec!["203.0.113.4".parse().expect("ip")]),
        ),
        (
            "public_url",
            Box::new(|c| c.public_url = Some("wss://sfu.example.com/ws".to_owned())),
        ),
    ];
    for (field, change) in &reachable {
        for (case, base, allowed) in [
            ("no credentials", Config::default(), false),
            (
                "auth_secret only",
                Config {
                    admin_token: None,
                    ..secured()
                },
                false,
            ),
            (
                "admin_token only",
                Config {
                    auth_secret: None,
                    ..secured()
                },
                false,
            ),
            ("both credentials", secured(), true),
            (
                "insecure",
                Config {
                    insecure: true,
                    ..Config::default()
                },
                true,
            ),
        ] {
            let mut config = base;
            change(&mut config);
            match config.validate() {
                Ok(()) => assert!(allowed, "{field} with {case} should be refused"),
                Err(e) => {
                    assert!(!allowed, "{field} with {case}: {e}");
                    let text = e.to_string();
                    assert!(text.contains(field), "{text} should name {field}");
                    assert!(text.contains("--insecure"), "{text} should name --insecure");
                    if config.auth_secret.is_none() {
                        assert!(text.contains("auth_secret"), "{text}");
                    }
                    if config.admin_token.is_none() {
                        assert!(text.contains("admin_token"), "{text}");
                    }
                }
            }
        }
    }
    for local in [
        "ws://127.0.0.1:8080/ws",
        "ws://localhost:8080/ws",
        "ws://[::1]:8080/ws",
    ] {
        let config = Config {
            public_url: Some(local.to_owned()),
            ..Config::default()
        };
        assert_eq!(config.reachable_from_elsewhere(), None, "{local}");
        config
            .validate()
            .expect("a loopback public_url keeps the dev defaults valid");
    }
}

#[test]
fn loopback_hosts_are_recognised() {
    // Requirement: only names and addresses of this machine's loopback count as local.
    for (host, local) in [
        ("localhost", true),
        ("LOCALHOST.", true),
        ("app.localhost", true),
        ("127.0.0.1", true),
        ("127.9.8.7", true),
        ("[::1]", true),
        ("::1", true),
        ("::ffff:127.0.0.1", true),
        ("localhost.example.com", false),
        ("10.0.0.1", false),
        ("::", false),
        ("example.com", false),
        ("", false),
    ] {
        assert_eq!(config::is_loopback_host(host), local, "{host}");
    }
}

#[test]
fn the_default_toml_parses_back_to_the_defaults() {
    // Requirement: the sample generated from the defaults is itself a valid config equal to them.
    let text = Config::default_toml();
    assert_eq!(
        Config::from_toml(&text, "sample.toml").expect("parses"),
        Config::default()
    );
}

#[test]
fn the_shipped_sample_config_matches_the_defaults() {
    // Requirement: deploy/sfu.sample.toml is exactly the defaults, so it never drifts from the code.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/sfu.sample.toml");
    let sample = Config::from_file(&path).expect("sample parses");
    assert_eq!(sample, Config::default());
    let text = std::fs::read_to_string(&path).expect("readable");
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        body,
        Config::default_toml(),
        "regenerate with `sfu-server --print-default-config`"
    );
}

#[test]
fn a_public_listener_needs_join_tokens_or_insecure() {
    // Requirement: binding a non-loopback address without credentials refuses to start
    // unless insecure is set; with them it is fine.
    let public = Config {
        http_listen: "0.0.0.0:8080".parse().expect("addr"),
        ..Config::default()
    };
    assert!(public.validate().is_err());
    let insecure = Config {
        insecure: true,
        ..public.clone()
    };
    insecure.validate().expect("insecure allows it");
    let with_secrets = Config {
        http_listen: public.http_listen,
        ..secured()
    };
    with_secrets.validate().expect("credentials allow it");
}
