//! Where the exchange's configuration comes from, in order of precedence
//! (lowest first): the built-in defaults, one TOML file, `BOURSE_*`
//! environment variables, command-line flags. The result is validated once,
//! here, and never re-read while the process runs.
//!
//! The TOML file is the one named by `--config`, else `config.toml` in the
//! current directory, else the demo `config.toml` embedded in the binary,
//! so a bare `bourse` runs a working demo exchange.
//!
//! Environment variables are `BOURSE_` plus the key in capitals, `__`
//! between nested keys: `BOURSE_LISTEN`, `BOURSE_DURABLE=false`,
//! `BOURSE_LIMITS__CONNECTIONS_MAX=5000`. `BOURSE_ADMIN_PASSWORD` (see
//! [`crate::admin`]), `BOURSE_BACKUP_KEY` (see [`crate::tools`]) and
//! `BOURSE_FAULT` (fault injection in debug builds, see
//! [`bourse_actors::failstop`]) are not configuration and are never read
//! here.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;

pub use bourse_actors::config::*;

/// The demo configuration compiled into the binary (the repository's `config.toml`).
pub const EMBEDDED_CONFIG: &str = include_str!("../config.toml");

/// The file looked for in the current directory when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "config.toml";

/// The prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "BOURSE_";

/// `BOURSE_*` variables that are not configuration keys (secrets and
/// process settings read elsewhere); without this list `deny_unknown_fields`
/// would refuse them.
pub const ENV_NOT_CONFIG: [&str; 3] = ["admin_password", "backup_key", "fault"];

/// Settings given on the command line; each one, when present, wins over
/// the file and the environment.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
}

/// Which TOML document the configuration was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Embedded,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Embedded => f.write_str("built-in config.toml"),
        }
    }
}

/// Why the configuration could not be loaded: the message names the file
/// and the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    #[error("configuration from {from}: {msg}")]
    Invalid { from: Source, msg: String },
}

/// Reads the configuration from `file` (or the default file, or the
/// embedded one), the process environment and `overrides`, then validates it.
pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<(Config, Source), ConfigError> {
    load_with_env(file, overrides, std::env::vars())
}

/// [`load`] with an explicit environment, so tests need not touch the
/// process's own.
pub fn load_with_env(
    file: Option<&Path>,
    overrides: &Overrides,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(Config, Source), ConfigError> {
    let source = match file {
        Some(p) if !p.is_file() => return Err(ConfigError::Missing(p.to_path_buf())),
        Some(p) => Source::File(p.to_path_buf()),
        None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
            Source::File(PathBuf::from(DEFAULT_CONFIG_FILE))
        }
        None => Source::Embedded,
    };
    let toml = match &source {
        Source::File(p) => Toml::file_exact(p),
        Source::Embedded => Toml::string(EMBEDDED_CONFIG),
    };
    let env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    let invalid = |msg: String| ConfigError::Invalid {
        from: source.clone(),
        msg,
    };

    let figment = Figment::from(Serialized::defaults(Config::default()))
        .merge(toml)
        .merge(EnvProvider(env));
    let mut cfg: Config = figment.extract().map_err(|e| invalid(figment_message(e)))?;
    if let Some(listen) = &overrides.listen {
        cfg.listen = listen.clone();
    }
    if let Some(dir) = &overrides.data_dir {
        cfg.data_dir = dir.clone();
    }
    cfg.validate().map_err(invalid)?;
    cfg.listen
        .parse::<std::net::SocketAddr>()
        .map_err(|e| invalid(format!("listen {:?}: {e}", cfg.listen)))?;
    Ok((cfg, source))
}

/// All of figment's errors on one line each, with the key path.
fn figment_message(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The `BOURSE_*` variables as a figment provider: `Env` reads the process
/// environment only, so the variables are fed through its parser by hand.
struct EnvProvider(Vec<(String, String)>);

impl figment::Provider for EnvProvider {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("BOURSE_* environment variable(s)")
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let mut dict = figment::value::Dict::new();
        for (k, v) in &self.0 {
            let key = k[ENV_PREFIX.len()..].to_ascii_lowercase();
            if key.is_empty() || ENV_NOT_CONFIG.contains(&key.as_str()) {
                continue;
            }
            let path: Vec<&str> = key.split("__").collect();
            let value: figment::value::Value = v.parse().expect("figment values parse infallibly");
            insert_path(&mut dict, &path, value);
        }
        Ok(figment::Profile::Default.collect(dict))
    }
}

fn insert_path(dict: &mut figment::value::Dict, path: &[&str], value: figment::value::Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert((*last).to_owned(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry((*first).to_owned())
                .or_insert_with(|| figment::value::Value::from(figment::value::Dict::new()));
            if let figment::value::Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            } else {
                let mut inner = figment::value::Dict::new();
                insert_path(&mut inner, rest, value);
                *entry = figment::value::Value::from(inner);
            }
        }
    }
}

/// One line describing the configuration for the start-up log: addresses,
/// paths, durability, sizes. Never passwords.
pub fn summary(cfg: &Config, source: &Source) -> String {
    let syms: Vec<&str> = cfg.instruments.iter().map(|i| i.sym.as_str()).collect();
    format!(
        "config from {source}: listen={} data_dir={} durable={} web_root={} log_format={} \
         connections_max={} assets={} instruments=[{}] users={} market_maker={}",
        cfg.listen,
        cfg.data_dir.display(),
        cfg.durable,
        cfg.web_root.display(),
        match cfg.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        },
        cfg.limits.connections_max,
        cfg.assets.len(),
        syms.join(","),
        cfg.users.len(),
        cfg.demo.market_maker,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn embedded(overrides: &Overrides, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        // A path that exists only when the repository root is the working
        // directory; the embedded copy is the same document.
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        load_with_env(Some(&file), overrides, env(vars)).map(|(c, _)| c)
    }

    #[test]
    fn embedded_config_is_valid_demo() {
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(EMBEDDED_CONFIG));
        let cfg: Config = figment.extract().unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:8080");
        assert!(cfg.durable);
        assert!(cfg.demo.market_maker);
        assert!(cfg.users.iter().any(|u| u.user == cfg.demo.user));
        assert_eq!(cfg.instruments.len(), 2);
    }

    #[test]
    fn production_config_is_valid_and_has_no_demo() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.production.toml");
        let (cfg, src) = load_with_env(Some(&file), &Overrides::default(), env(&[])).unwrap();
        assert_eq!(src, Source::File(file));
        assert_eq!(cfg.listen, "0.0.0.0:8080");
        assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/bourse"));
        assert!(cfg.users.is_empty());
        assert!(!cfg.demo.market_maker);
    }

    #[test]
    fn environment_overrides_file_and_flags_override_environment() {
        let cfg = embedded(
            &Overrides {
                listen: None,
                data_dir: Some(PathBuf::from("/tmp/flag")),
            },
            &[
                ("BOURSE_LISTEN", "127.0.0.1:9999"),
                ("BOURSE_DATA_DIR", "/tmp/env"),
                ("BOURSE_DURABLE", "false"),
                ("BOURSE_LIMITS__CONNECTIONS_MAX", "17"),
                ("BOURSE_ADMIN_PASSWORD", "not-config"),
                ("OTHER_VAR", "ignored"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:9999");
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/flag"));
        assert!(!cfg.durable);
        assert_eq!(cfg.limits.connections_max, 17);
        // Untouched nested keys keep their defaults.
        assert_eq!(
            cfg.limits.subscriptions_max,
            Limits::default().subscriptions_max
        );

        let cfg = embedded(
            &Overrides {
                listen: Some("127.0.0.1:1".into()),
                data_dir: None,
            },
            &[("BOURSE_LISTEN", "127.0.0.1:9999")],
        )
        .unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:1");
    }

    #[test]
    fn errors_name_the_problem() {
        let e = embedded(
            &Overrides::default(),
            &[("BOURSE_LIMITS__CONNECTIONS_MAX", "0")],
        )
        .unwrap_err();
        assert!(e.to_string().contains("connections_max"), "{e}");

        let e = embedded(&Overrides::default(), &[("BOURSE_NO_SUCH_KEY", "1")]).unwrap_err();
        assert!(e.to_string().contains("no_such_key"), "{e}");

        let e = embedded(&Overrides::default(), &[("BOURSE_DURABLE", "maybe")]).unwrap_err();
        assert!(e.to_string().contains("durable"), "{e}");

        let e = embedded(
            &Overrides {
                listen: Some("nowhere".into()),
                data_dir: None,
            },
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("listen"), "{e}");

        let e = load_with_env(
            Some(Path::new("/no/such/bourse.toml")),
            &Overrides::default(),
            env(&[]),
        )
        .unwrap_err();
        assert!(matches!(e, ConfigError::Missing(_)), "{e}");
    }

    #[test]
    fn summary_has_no_passwords() {
        let cfg = embedded(&Overrides::default(), &[]).unwrap();
        let line = summary(&cfg, &Source::Embedded);
        for u in &cfg.users {
            assert!(!line.contains(&u.password), "{line}");
        }
        assert!(line.contains("BTC-USD"), "{line}");
    }
}
