//! Where the catalog is (`--catalog`, the service's `catalog`): a SQLite
//! file for one host, or a PostgreSQL database several hosts share.

use crate::error::{invalid, OpsResult};
use crate::location::{require_parent, StoreLocation};
use blockback_catalog::{is_postgres_url, redact_url, PgCatalog, SqliteCatalog};
use blockback_core::catalog::Catalog;
use std::path::{Path, PathBuf};

/// A catalog's location.
#[derive(Clone, PartialEq)]
pub enum CatalogLocation {
    /// A SQLite database file; its digests and lock files live beside it.
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://USER:PASSWORD@HOST:PORT/DB`),
    /// shared by several hosts. What stays on each host (block digests,
    /// the host's lock files) lives in `local_dir`.
    Postgres { url: String, local_dir: PathBuf },
}

impl std::fmt::Debug for CatalogLocation {
    /// Never shows a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CatalogLocation({self})")
    }
}

impl std::fmt::Display for CatalogLocation {
    /// The location for messages, without a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CatalogLocation::Sqlite(path) => write!(f, "{}", path.display()),
            CatalogLocation::Postgres { url, .. } => f.write_str(&redact_url(url)),
        }
    }
}

impl CatalogLocation {
    /// Parses `--catalog`: a `postgres://` (or `postgresql://`) URL, or a
    /// file path whose directory must exist. `local_dir` is where a
    /// PostgreSQL catalog's host-local files go.
    pub fn parse(text: &str, local_dir: &Path) -> OpsResult<Self> {
        if is_postgres_url(text) {
            return Ok(CatalogLocation::Postgres {
                url: text.to_string(),
                local_dir: local_dir.to_path_buf(),
            });
        }
        if text.is_empty() {
            return invalid("the catalog is empty: give a file path or postgres://HOST/DB");
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return invalid(format!(
                "catalog {}: unknown scheme {scheme}://; give a SQLite file path or postgres://USER@HOST:PORT/DB",
                redact_url(text)
            ));
        }
        let path = Path::new(text);
        require_parent(path, "--catalog")?;
        Ok(CatalogLocation::Sqlite(crate::address::absolute(path)?))
    }

    /// Whether several hosts may share it.
    pub fn is_shared(&self) -> bool {
        matches!(self, CatalogLocation::Postgres { .. })
    }

    /// Opens (creating and migrating as needed) the catalog.
    pub fn open(&self) -> OpsResult<Box<dyn Catalog>> {
        Ok(match self {
            CatalogLocation::Sqlite(path) => Box::new(SqliteCatalog::open(path)?),
            CatalogLocation::Postgres { url, .. } => Box::new(PgCatalog::connect(url)?),
        })
    }

    /// Where this host keeps block digests and lock files for it.
    fn local_base(&self) -> PathBuf {
        match self {
            CatalogLocation::Sqlite(path) => path.clone(),
            CatalogLocation::Postgres { local_dir, .. } => local_dir.join("shared-catalog"),
        }
    }

    /// Block digests of the backups incrementals continue from.
    pub fn digest_dir(&self) -> PathBuf {
        self.local_base().with_extension("digests")
    }

    /// This host's lock files.
    pub fn lock_dir(&self) -> PathBuf {
        self.local_base().with_extension("locks")
    }

    /// Refuses a local store with a shared catalog: other hosts could
    /// not reach it.
    pub fn check_store(&self, store: &StoreLocation) -> OpsResult<()> {
        match (self, store) {
            (CatalogLocation::Postgres { .. }, StoreLocation::Local(path)) => invalid(format!(
                "the local store {} is for one host; with the shared catalog {self} the store must be a Ceph pool: give --store rbd:POOL",
                path.display()
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_paths_and_typos() {
        let dir = tempfile::tempdir().unwrap();
        let pg = CatalogLocation::parse("postgres://bb:secret@db:5432/bb", dir.path()).unwrap();
        assert!(pg.is_shared());
        assert_eq!(pg.to_string(), "postgres://bb@db:5432/bb");
        assert!(!format!("{pg:?}").contains("secret"));
        assert!(pg.digest_dir().starts_with(dir.path()));
        let file = dir.path().join("c.sqlite");
        let sqlite = CatalogLocation::parse(file.to_str().unwrap(), dir.path()).unwrap();
        assert!(!sqlite.is_shared());
        assert_eq!(sqlite.lock_dir(), dir.path().join("c.locks"));
        let e = CatalogLocation::parse("mysql://u:pw@h/db", dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown scheme mysql://") && !e.contains("pw"),
            "{e}"
        );
    }

    #[test]
    fn a_shared_catalog_refuses_a_local_store_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let pg = CatalogLocation::parse("postgresql://db/bb", dir.path()).unwrap();
        let local = StoreLocation::Local(dir.path().join("store"));
        let e = pg.check_store(&local).unwrap_err().to_string();
        assert!(
            e.contains("is for one host") && e.contains("rbd:POOL"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        assert!(pg
            .check_store(&StoreLocation::Rbd("backups".into()))
            .is_ok());
        let sqlite = CatalogLocation::Sqlite(dir.path().join("c.sqlite"));
        assert!(sqlite.check_store(&local).is_ok());
    }
}
