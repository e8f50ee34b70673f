//! Connecting to a Ceph cluster as one client user.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use blockback_core::image::{ImageError, Result};

use crate::error::{errno_text, from_errno, libs_missing};
use crate::ffi::{self, Errno, Rados};
use crate::pool::RbdPool;

/// Where the cluster is and who we are (the rbd CLI's `-c`, `--id`, `--keyring`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `ceph.conf`; `None` means `$CEPH_CONF`, else `/etc/ceph/ceph.conf`.
    pub conf: Option<PathBuf>,
    /// The client id without `client.` (e.g. `admin`); must not be empty.
    pub id: String,
    /// Keyring file; `None` uses the conf's `keyring` setting and Ceph's
    /// default search path.
    pub keyring: Option<PathBuf>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            conf: None,
            id: "admin".into(),
            keyring: None,
        }
    }
}

impl ClusterConfig {
    /// The conf file this config reads.
    pub fn conf_path(&self) -> PathBuf {
        if let Some(p) = &self.conf {
            return p.clone();
        }
        match std::env::var_os("CEPH_CONF") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from("/etc/ceph/ceph.conf"),
        }
    }

    fn describe(&self) -> String {
        format!(
            "Ceph cluster {} as client.{}",
            self.conf_path().display(),
            self.id
        )
    }

    fn validate(&self) -> Result<()> {
        let why = if self.id.trim().is_empty() {
            "the client id is empty (use e.g. --id admin)"
        } else if self.id.starts_with("client.") {
            "give the client id without the 'client.' prefix (e.g. admin)"
        } else if self.id.contains(char::is_whitespace) || self.id.contains('\0') {
            "the client id contains whitespace or NUL"
        } else {
            return Ok(());
        };
        Err(ImageError::Invalid {
            what: format!("Ceph client id '{}'", self.id),
            why: why.into(),
        })
    }
}

/// A connected cluster; share it with `Arc` (pools and images keep it alive).
pub struct Cluster {
    rados: Arc<Rados>,
    describe: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

/// How long one OSD or monitor operation may wait before it fails
/// (`rados_osd_op_timeout`, `rados_mon_op_timeout`), unless configured.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(120);

/// Unreachable monitors and wrong keys (which librados retries rather than
/// reporting) fail after this long instead of librados' 300 s. The conf file
/// or CEPH_ARGS may still override it.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl Cluster {
    /// Connects as `client.<id>` (`rados_create2` + conf file + `CEPH_ARGS`
    /// + keyring + `rados_connect`).
    pub fn connect(config: &ClusterConfig) -> Result<Arc<Cluster>> {
        Self::connect_with_timeout(config, DEFAULT_CONNECT_TIMEOUT)
    }

    /// [`Cluster::connect`] giving up after `timeout` (`client_mount_timeout`).
    pub fn connect_with_timeout(config: &ClusterConfig, timeout: Duration) -> Result<Arc<Cluster>> {
        config.validate()?;
        ffi::ensure_loaded().map_err(libs_missing)?;
        let what = config.describe();
        let user = cstr(&format!("client.{}", config.id), &what)?;
        let rados = Rados::create(&user)
            .map_err(libs_missing)?
            .map_err(|e| from_errno(e, what.clone()))?;
        // librados waits 300 s for monitors and forever for an unreachable
        // OSD by default; a backup must fail instead.
        let op_secs = DEFAULT_OP_TIMEOUT.as_secs().to_string();
        let defaults = [
            OptionDefault {
                option: "client_mount_timeout",
                builtin: "300",
                ours: timeout.as_secs().max(1).to_string(),
            },
            OptionDefault {
                option: "rados_osd_op_timeout",
                builtin: "0",
                ours: op_secs.clone(),
            },
            OptionDefault {
                option: "rados_mon_op_timeout",
                builtin: "0",
                ours: op_secs,
            },
            // The cache makes librbd copy every written buffer and, in its
            // writearound mode, acknowledge writes before the OSD has them;
            // a backup writes each byte once and flushes anyway (~10% less
            // client CPU on a full backup without it, which the OSD gets on
            // a small machine). librbd still copies each aio write's buffer
            // while `rbd_disable_zero_copy_writes` keeps its default.
            OptionDefault {
                option: "rbd_cache",
                builtin: "true",
                ours: "false".into(),
            },
            // What librbd keeps in flight for whole-image work: rebuilding
            // a filled base's object map (a stat of every object: 168 ms
            // for 256 objects at 10 under the 2 ms profile, 68 ms at 64),
            // removing an image, a rollback.
            OptionDefault {
                option: "rbd_concurrent_management_ops",
                builtin: "10",
                ours: "64".into(),
            },
        ];
        configure_with_defaults(&rados, config, &what, &defaults)?;
        rados
            .connect()
            .map_err(|e| connect_error(e, config, &what))?;
        tracing::debug!("connected to {what}");
        Ok(Arc::new(Cluster {
            rados: Arc::new(rados),
            describe: what,
        }))
    }

    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Whether an operation on this connection timed out: the cluster was
    /// unreachable, and every later operation fails at once (see
    /// `breaker.rs`). Connect anew to try again.
    pub fn is_tripped(&self) -> bool {
        self.rados.breaker.is_tripped()
    }

    /// Opens pool `name` (NotFound naming the pool when it does not exist).
    pub fn open_pool(self: &Arc<Self>, name: &str) -> Result<RbdPool> {
        RbdPool::open(self, name)
    }

    pub(crate) fn rados(&self) -> &Arc<Rados> {
        &self.rados
    }
}

/// An option we give a default of our own, and librados' built-in value of it.
struct OptionDefault {
    option: &'static str,
    builtin: &'static str,
    ours: String,
}

impl OptionDefault {
    /// Whether `current` is still the built-in value (numbers compare as
    /// numbers: librados prints `300` where a conf file may say `300.0`).
    fn is_builtin(&self, current: &str) -> bool {
        let current = current.trim();
        match (current.parse::<f64>(), self.builtin.parse::<f64>()) {
            (Ok(a), Ok(b)) => a == b,
            _ => current.eq_ignore_ascii_case(self.builtin),
        }
    }
}

/// Reads the conf file, `CEPH_ARGS` and the keyring, then sets each of
/// `defaults` still at librados' built-in value.
///
/// Not simply set first: `rados_conf_set` writes at Ceph's highest
/// ("override") level, above both the conf file and `CEPH_ARGS`, so a value
/// set before reading them could never be overridden. Nor can the built-in
/// value be read at run time: `rados_create2` has already applied
/// `CEPH_ARGS`. So an option explicitly set to the built-in value (e.g.
/// `rados_osd_op_timeout = 0`, wait forever) still gets our default.
fn configure_with_defaults(
    rados: &Rados,
    config: &ClusterConfig,
    what: &str,
    defaults: &[OptionDefault],
) -> Result<()> {
    configure(rados, config, what)?;
    for d in defaults {
        if d.is_builtin(&get(rados, d.option, what)?) {
            set(rados, d.option, &d.ours, what)?;
        }
    }
    Ok(())
}

fn configure(rados: &Rados, config: &ClusterConfig, what: &str) -> Result<()> {
    let conf = config.conf_path();
    require_file(&conf, "Ceph configuration file")?;
    let conf_c = cstr(&conf.to_string_lossy(), what)?;
    rados
        .conf_read_file(Some(&conf_c))
        .map_err(|e| conf_error(e, &conf))?;
    rados
        .conf_parse_env(c"CEPH_ARGS")
        .map_err(|e| ImageError::Invalid {
            what: "CEPH_ARGS".into(),
            why: errno_text(e.0),
        })?;
    if let Some(keyring) = &config.keyring {
        require_file(keyring, "keyring")?;
        set(rados, "keyring", &keyring.to_string_lossy(), what)?;
    }
    Ok(())
}

fn set(rados: &Rados, option: &str, value: &str, what: &str) -> Result<()> {
    let (o, v) = (cstr(option, what)?, cstr(value, what)?);
    rados.conf_set(&o, &v).map_err(|e| ImageError::Invalid {
        what: format!("{what}: option {option}={value}"),
        why: errno_text(e.0),
    })
}

fn get(rados: &Rados, option: &str, what: &str) -> Result<String> {
    let o = cstr(option, what)?;
    rados.conf_get(&o).map_err(|e| ImageError::Invalid {
        what: format!("{what}: option {option}"),
        why: errno_text(e.0),
    })
}

/// Checked here because librados' ENOENT would not say which file is missing.
fn require_file(path: &Path, kind: &str) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(ImageError::Invalid {
            what: format!("{kind} {}", path.display()),
            why: "not a regular file".into(),
        }),
        Err(e) => Err(ImageError::from_io(format!("{kind} {}", path.display()), e)),
    }
}

fn conf_error(e: Errno, conf: &Path) -> ImageError {
    let what = format!("Ceph configuration file {}", conf.display());
    match e.0 {
        libc::EINVAL => ImageError::Invalid {
            what,
            why: "cannot be parsed".into(),
        },
        _ => from_errno(e, what),
    }
}

/// Connect failures say what to check: they are nearly always the user,
/// the keyring or an unreachable monitor.
fn connect_error(e: Errno, config: &ClusterConfig, what: &str) -> ImageError {
    let user = format!("client.{}", config.id);
    let conf = config.conf_path();
    match (e.0, &config.keyring) {
        (libc::ENOENT, None) => ImageError::NotFound {
            what: format!(
                "keyring for {user} (conf {}; pass --keyring or set keyring in the conf)",
                conf.display()
            ),
        },
        (libc::ENOENT, Some(k)) => ImageError::NotFound {
            what: format!("key for {user} in keyring {}", k.display()),
        },
        (libc::EACCES | libc::EPERM, _) => ImageError::PermissionDenied {
            what: format!("{what} (wrong user or key: check --id and --keyring)"),
        },
        // librados retries a refused key until the timeout instead of failing.
        (libc::ETIMEDOUT, _) => ImageError::Backend {
            what: what.into(),
            msg: "timed out: the monitors are unreachable or refused the key \
                  (check mon_host in the conf, --id and --keyring)"
                .into(),
        },
        (n, _) => ImageError::Backend {
            what: what.into(),
            msg: format!("connect failed: {}", errno_text(n)),
        },
    }
}

/// `s` as a C string; NUL bytes make it invalid input about `what`.
pub(crate) fn cstr(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| ImageError::Invalid {
        what: what.into(),
        why: format!("'{}' contains a NUL byte", s.escape_debug()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(id: &str) -> ClusterConfig {
        ClusterConfig {
            id: id.into(),
            ..ClusterConfig::default()
        }
    }

    #[test]
    fn empty_or_prefixed_ids_are_refused() {
        for id in ["", "  ", "client.admin", "a b"] {
            let err = config(id).validate().unwrap_err();
            assert!(matches!(err, ImageError::Invalid { .. }), "{id:?}: {err}");
        }
        config("admin").validate().unwrap();
    }

    #[test]
    fn explicit_conf_wins() {
        let c = ClusterConfig {
            conf: Some("/x/c.conf".into()),
            ..config("admin")
        };
        assert_eq!(c.conf_path(), PathBuf::from("/x/c.conf"));
    }
}

#[cfg(test)]
mod default_tests {
    use super::*;

    /// Runs `f` on an unconnected handle for `client.admin`; `None` when the
    /// Ceph libraries are not installed (nothing to test then).
    fn with_handle<T>(f: impl FnOnce(&Rados) -> T) -> Option<T> {
        ffi::ensure_loaded().ok()?;
        let rados = Rados::create(c"client.admin").ok()?.ok()?;
        Some(f(&rados))
    }

    #[test]
    fn conf_file_values_win_over_our_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("ceph.conf");
        std::fs::write(&conf, "[global]\nrados_osd_op_timeout = 7\n").unwrap();
        let config = ClusterConfig {
            conf: Some(conf),
            ..ClusterConfig::default()
        };
        let defaults = [
            OptionDefault {
                option: "rados_osd_op_timeout",
                builtin: "0",
                ours: "120".into(),
            },
            OptionDefault {
                option: "rados_mon_op_timeout",
                builtin: "0",
                ours: "120".into(),
            },
            OptionDefault {
                option: "rbd_cache",
                builtin: "true",
                ours: "false".into(),
            },
        ];
        let got = with_handle(|r| {
            configure_with_defaults(r, &config, "test", &defaults).unwrap();
            ["rados_osd_op_timeout", "rados_mon_op_timeout", "rbd_cache"]
                .map(|o| get(r, o, "test").unwrap())
        });
        let Some(got) = got else { return };
        assert_eq!(got, ["7", "120", "false"]);
    }
}
