//! The bootstrap operator's password: the one secret the exchange needs
//! before any user exists. It comes from `BOURSE_ADMIN_PASSWORD`, else from
//! `<data_dir>/initial-admin-password`, else it is generated (24 random
//! alphanumeric characters from the OS generator) and written to that file,
//! readable by the owner only. The password itself is never logged; the log
//! names where to find it.

use std::io::Write;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};

/// The environment variable that sets the admin password.
pub const ENV_ADMIN_PASSWORD: &str = "BOURSE_ADMIN_PASSWORD";
/// The file in the data directory holding the generated admin password.
pub const PASSWORD_FILE: &str = bourse_actors::node::ADMIN_PASSWORD_FILE;
/// Length of a generated password: 24 characters of 62 give about 143 bits.
pub const GENERATED_LEN: usize = 24;
/// The longest password file read back (a generated one is 24 bytes; this
/// leaves room for an operator's own without reading arbitrary files whole).
pub const PASSWORD_FILE_BYTES_MAX: u64 = bourse_actors::node::ADMIN_PASSWORD_FILE_BYTES_MAX;

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Where the admin password came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordSource {
    Env,
    File(PathBuf),
    Generated(PathBuf),
}

/// The admin password and its origin.
#[derive(Clone)]
pub struct AdminPassword {
    pub password: String,
    pub source: PasswordSource,
}

impl std::fmt::Debug for AdminPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminPassword")
            .field("password", &"<hidden>")
            .field("source", &self.source)
            .finish()
    }
}

/// Finds or creates the admin password for a node whose data lives in `data_dir`.
pub fn admin_password(data_dir: &Path) -> anyhow::Result<AdminPassword> {
    admin_password_from(std::env::var(ENV_ADMIN_PASSWORD).ok(), data_dir)
}

/// [`admin_password`] with the environment variable's value given.
pub fn admin_password_from(env: Option<String>, data_dir: &Path) -> anyhow::Result<AdminPassword> {
    if let Some(password) = env.filter(|p| !p.is_empty()) {
        return Ok(AdminPassword {
            password,
            source: PasswordSource::Env,
        });
    }
    let path = data_dir.join(PASSWORD_FILE);
    if path.exists() {
        let len = std::fs::metadata(&path)?.len();
        anyhow::ensure!(
            len <= PASSWORD_FILE_BYTES_MAX,
            "{} is over {PASSWORD_FILE_BYTES_MAX} bytes",
            path.display()
        );
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let password = text.trim_end_matches(['\n', '\r']).to_owned();
        anyhow::ensure!(!password.is_empty(), "{} is empty", path.display());
        return Ok(AdminPassword {
            password,
            source: PasswordSource::File(path),
        });
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create data directory {}: {e}", data_dir.display()))?;
    let password = generate(GENERATED_LEN)?;
    write_private(&path, password.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(AdminPassword {
        password,
        source: PasswordSource::Generated(path),
    })
}

/// A random alphanumeric string. Rejection sampling keeps every character
/// equally likely (256 is not a multiple of 62).
pub fn generate(len: usize) -> anyhow::Result<String> {
    let rng = SystemRandom::new();
    let limit = 256 - 256 % ALPHABET.len();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        rng.fill(&mut buf)
            .map_err(|_| anyhow::anyhow!("the operating system's random generator failed"))?;
        for &b in &buf {
            if out.len() == len {
                break;
            }
            if usize::from(b) < limit {
                out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

/// Creates `path` (which must not exist) with mode 0600 and writes `bytes`, synced.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "bourse-admin-{name}-{}-{}",
            std::process::id(),
            generate(8).unwrap()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn generated_once_then_read_back() {
        let dir = temp_dir("gen").join("nested");
        let first = admin_password_from(None, &dir).unwrap();
        let path = dir.join(PASSWORD_FILE);
        assert_eq!(first.source, PasswordSource::Generated(path.clone()));
        assert_eq!(first.password.len(), GENERATED_LEN);
        assert!(first.password.bytes().all(|b| b.is_ascii_alphanumeric()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = admin_password_from(None, &dir).unwrap();
        assert_eq!(second.source, PasswordSource::File(path));
        assert_eq!(second.password, first.password);
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn environment_wins_and_writes_nothing() {
        let dir = temp_dir("env");
        let p = admin_password_from(Some("from-env".into()), &dir).unwrap();
        assert_eq!(p.password, "from-env");
        assert_eq!(p.source, PasswordSource::Env);
        assert!(!dir.exists());
        // An empty variable counts as unset.
        let p = admin_password_from(Some(String::new()), &dir).unwrap();
        assert!(matches!(p.source, PasswordSource::Generated(_)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn generated_passwords_differ_and_debug_hides_them() {
        let a = generate(GENERATED_LEN).unwrap();
        let b = generate(GENERATED_LEN).unwrap();
        assert_ne!(a, b);
        let shown = format!(
            "{:?}",
            AdminPassword {
                password: a.clone(),
                source: PasswordSource::Env
            }
        );
        assert!(!shown.contains(&a));
    }
}
