//! Command-line arguments as parsed (the "low" args); `config` resolves them.

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Block-volume backups: fast, exact, deduplicated, verified.
#[derive(Debug, Parser)]
#[command(name = "blockback", version, about)]
pub struct Cli {
    /// Talk to a running `blockback serve` at this URL (backup list,
    /// create, restore, job list/show/cancel); the token comes from
    /// $BLOCKBACK_TOKEN.
    #[arg(long, global = true, env = "BLOCKBACK_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Backup store: a directory, or `rbd:POOL` [default: $XDG_DATA_HOME/blockback/store].
    #[arg(long, global = true, env = "BLOCKBACK_STORE")]
    pub store: Option<String>,
    /// Catalog: a SQLite file, or postgres://USER:PASSWORD@HOST:PORT/DB for
    /// one shared by several hosts (then the store must be rbd:POOL; give
    /// a password through BLOCKBACK_CATALOG rather than the command line)
    /// [default: $XDG_DATA_HOME/blockback/catalog.sqlite].
    #[arg(long, global = true, env = "BLOCKBACK_CATALOG", hide_env_values = true)]
    pub catalog: Option<String>,
    /// Local store holding `local:IMAGE` volumes [default: --store, when local].
    #[arg(long, global = true, env = "BLOCKBACK_VOLUME_STORE")]
    pub volume_store: Option<PathBuf>,
    /// Machine-readable JSON output on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress and no notes; errors only.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(flatten)]
    pub ceph: CephArgs,
    #[command(flatten)]
    pub rbd_layout: RbdLayoutArgs,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The key material of an encrypted local store. There is deliberately no
/// option taking a passphrase itself (command lines are visible to every
/// user of the host): a file, $BLOCKBACK_PASSPHRASE, or a prompt.
#[derive(Debug, Args, Clone, Default)]
pub struct KeyArgs {
    /// Key file of an encrypted local store (`store init --encryption`
    /// writes a new one when PATH does not exist).
    #[arg(long, global = true, env = "BLOCKBACK_KEY_FILE", value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// File holding the passphrase of an encrypted local store [default:
    /// $BLOCKBACK_PASSPHRASE, else a prompt when stdin is a terminal].
    #[arg(
        long,
        global = true,
        env = "BLOCKBACK_PASSPHRASE_FILE",
        value_name = "PATH"
    )]
    pub passphrase_file: Option<PathBuf>,
}

/// Cluster settings of the store endpoint and of the volume endpoint
/// (source of a backup, target of a restore), which may be different clusters.
#[derive(Debug, Args, Clone)]
pub struct CephArgs {
    /// ceph.conf of the store's cluster [default: $CEPH_CONF or /etc/ceph/ceph.conf].
    #[arg(long, global = true)]
    pub ceph_conf: Option<PathBuf>,
    /// Ceph client id of the store's cluster (without `client.`).
    #[arg(long, global = true, default_value = "admin")]
    pub ceph_id: String,
    /// Keyring for the store's cluster.
    #[arg(long, global = true)]
    pub keyring: Option<PathBuf>,
    /// ceph.conf of the volume's cluster [default: the store's].
    #[arg(long, global = true)]
    pub volume_ceph_conf: Option<PathBuf>,
    /// Ceph client id of the volume's cluster [default: the store's].
    #[arg(long, global = true)]
    pub volume_ceph_id: Option<String>,
    /// Keyring for the volume's cluster [default: the store's].
    #[arg(long, global = true)]
    pub volume_keyring: Option<PathBuf>,
    /// Requests kept in flight on each RBD image (reads, writes; four diff
    /// passes per slot), 1 to 256. A networked cluster answers in 0.2-2 ms
    /// per request, so depth decides speed; a transfer's data buffers stay
    /// within 64 MiB of 4 MiB segments however deep.
    #[arg(
        long,
        global = true,
        env = "BLOCKBACK_RBD_QUEUE_DEPTH",
        value_name = "N",
        default_value_t = blockback_rbd::DEFAULT_QUEUE_DEPTH,
        value_parser = clap::value_parser!(u16).range(1..=256).map(usize::from)
    )]
    pub rbd_queue_depth: usize,
}

/// Layout of the base images an RBD store creates (one per backup chain),
/// as the rbd CLI's `--image-feature`, `--order`, `--stripe-unit` and
/// `--stripe-count` (Cinder: `backup_ceph_stripe_unit`, `backup_ceph_stripe_count`).
#[derive(Debug, Args, Clone, Default)]
pub struct RbdLayoutArgs {
    /// Features of new base images in an RBD store: comma-separated names
    /// (layering, striping, exclusive-lock, object-map, fast-diff,
    /// deep-flatten) or a number [default: layering, exclusive-lock,
    /// object-map, fast-diff, or fewer where the cluster refuses them].
    #[arg(long, global = true, value_name = "LIST")]
    pub rbd_features: Option<String>,
    /// Object size of new base images as a power of two, 12 to 25 [default: 22, 4 MiB].
    #[arg(long, global = true, value_name = "N")]
    pub rbd_order: Option<u8>,
    /// Stripe unit of new base images in bytes (at least 512, dividing the
    /// object size); with --rbd-stripe-count.
    #[arg(long, global = true, value_name = "BYTES")]
    pub rbd_stripe_unit: Option<u64>,
    /// Stripe count of new base images (at least 1); with --rbd-stripe-unit.
    #[arg(long, global = true, value_name = "N")]
    pub rbd_stripe_count: Option<u64>,
}

impl RbdLayoutArgs {
    pub fn is_empty(&self) -> bool {
        self.rbd_features.is_none()
            && self.rbd_order.is_none()
            && self.rbd_stripe_unit.is_none()
            && self.rbd_stripe_count.is_none()
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the backup service (native and Cinder-compatible HTTP APIs, jobs, metrics).
    Serve(ServeArgs),
    /// The service's jobs.
    #[command(subcommand)]
    Job(JobCommand),
    /// The service's registered volumes (with --server).
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Create, restore, list, show and delete backups.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Re-read and re-hash a backup, or every backup and chunk of the store.
    Verify {
        /// Backup id (or unique prefix); the whole store when omitted.
        backup: Option<String>,
        /// An encrypted local store without its key: check the checksums
        /// of every stored file (finds damage such as flipped bits or
        /// truncation; only a verify with the key authenticates the data).
        #[arg(long, conflicts_with_all = ["backup", "repair"])]
        stored_only: bool,
        /// Local stores: re-read the sources of backups that fail into the
        /// store, storing again the data it lost, then verify again.
        #[arg(long)]
        repair: bool,
    },
    /// Reclaim the space of data no backup references any more.
    Gc,
    /// Remove the backups of the store that no retention policy keeps
    /// (chain-aware), then reclaim their space; `--dry-run` only shows
    /// each backup with the rules that keep it, or "remove".
    Prune {
        /// Only this volume: its source as given to `backup create`, its
        /// id (or unique prefix) or its name.
        #[arg(long)]
        volume: Option<String>,
        /// Show what would be kept and removed; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Set, show or remove retention policies (per volume, or the store's
    /// default for its volumes).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Record the backups a store already holds (written by Cinder's Ceph
    /// driver, or by a blockback whose catalog was lost).
    Adopt {
        /// Pool of the volumes the backups were taken from (recorded as
        /// their source `rbd:POOL/volume-<id>`).
        #[arg(long, default_value = "volumes")]
        volume_pool: String,
        /// Read each backup that has no checksum once, to record one (so
        /// verify and restores check it) and the newest backup's block
        /// digests (so the volume's next backup continues its chain).
        /// Costs one read of each chain's first backup plus the changes.
        #[arg(long)]
        checksums: bool,
        /// Only the backups of this volume (its id, as in `volume-<id>`).
        #[arg(long)]
        volume_id: Option<uuid::Uuid>,
    },
    /// Create or inspect the backup store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// The key slots of an encrypted local store: each wraps the store's
    /// master key once (a key file or a passphrase); changing them never
    /// rewrites data.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Write the changes of IMAGE[@SNAP] since --from-snap as an `rbd diff v1` stream.
    ExportDiff {
        /// File, block device, local:IMAGE[@SNAP], backup:ID or rbd:POOL/IMAGE[@SNAP].
        source: String,
        /// Output file, or - for stdout.
        out: String,
        /// Only changes since this snapshot (absent: the whole image).
        #[arg(long)]
        from_snap: Option<String>,
    },
    /// Apply an `rbd diff v1` (or v2) stream to an existing image.
    ImportDiff {
        /// Input file, or - for stdin.
        input: String,
        /// File, block device, local:IMAGE or rbd:POOL/IMAGE.
        target: String,
        /// Apply even if the from-snapshot is missing, HEAD changed since
        /// it, or the end snapshot exists.
        #[arg(long)]
        force: bool,
    },
    /// Export an image with its snapshots as an `rbd image v2` stream.
    Export {
        /// File, block device, local:IMAGE, backup:ID or rbd:POOL/IMAGE.
        source: String,
        /// Output file, or - for stdout.
        out: String,
        /// Stream format: 2 (`rbd export --export-format 2`), the only one.
        #[arg(long = "export-format", alias = "format", default_value_t = 2)]
        format: u8,
    },
    /// Import an `rbd image v2` stream into a new image, snapshots included.
    Import {
        /// Input file, or - for stdin.
        input: String,
        /// New file, local:IMAGE or rbd:POOL/IMAGE to create.
        target: String,
        /// Stream format: 2 (`rbd import --export-format 2`), the only one.
        #[arg(long = "export-format", alias = "format", default_value_t = 2)]
        format: u8,
    },
    /// Serve backups over NBD (read-only, or copy-on-write with
    /// --writable) until Ctrl-C or SIGTERM: `nbdinfo`, `nbdcopy`, `qemu-img`,
    /// `qemu-nbd`-style clients and VMs read them at once.
    Nbd(NbdArgs),
    /// Merge two `rbd diff v1` streams (first may be -, second a file).
    MergeDiff {
        /// The older diff: a file, or - for stdin.
        first: String,
        /// The newer diff, continuing the first: a file.
        second: String,
        /// Output file, or - for stdout.
        out: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up a volume (image file or block device); incremental when the
    /// volume has a previous backup in this store.
    Create(CreateArgs),
    /// Restore a backup into a new file or onto an existing file or device.
    Restore {
        /// Backup id (or unique prefix).
        backup: String,
        /// New file or `rbd:POOL/IMAGE` to create, or an existing file, block
        /// device or RBD image (at least the backup's size).
        target: String,
        #[command(flatten)]
        live: LiveArgs,
    },
    /// List backups, oldest first.
    List {
        /// Only backups of this source.
        #[arg(long)]
        source: Option<String>,
    },
    /// Show one backup in full.
    Show {
        /// Backup id (or unique prefix).
        backup: String,
    },
    /// Protect a backup: no policy removes it and `backup delete` refuses it.
    Protect {
        /// Backup id (or unique prefix).
        backup: String,
    },
    /// Lift the protection of a backup.
    Unprotect {
        /// Backup id (or unique prefix).
        backup: String,
    },
    /// Delete a backup; `gc` then reclaims its space.
    Delete {
        /// Backup id (or unique prefix).
        backup: String,
        /// Seconds between retries while the backup image is busy.
        #[arg(long, default_value_t = 5.0)]
        retry_delay: f64,
    },
}

/// `backup restore --live`: serve the backup over NBD at once and copy it
/// into the target image in the background.
#[derive(Debug, Args)]
pub struct LiveArgs {
    /// Serve the backup over NBD at once (export name: the backup id);
    /// reads of blocks not yet copied come from the backup, writes go to
    /// the target (a new rbd:POOL/IMAGE or local:IMAGE). Runs until
    /// Ctrl-C or SIGTERM, also after the copy is complete; run the same
    /// command again to resume an interrupted one.
    #[arg(long)]
    pub live: bool,
    /// Where to serve with --live: unix:PATH or tcp:127.0.0.1:PORT.
    #[arg(long, default_value = "tcp:127.0.0.1:10809", requires = "live")]
    pub listen: String,
    /// Most bytes per second the background copy reads (e.g. 50M), so
    /// that it leaves the clients room [default: no limit].
    #[arg(long, value_parser = parse_rate, requires = "live")]
    pub copy_rate: Option<u64>,
    /// Remove the target an interrupted live restore of this backup left
    /// (instead of resuming it).
    #[arg(long, requires = "live")]
    pub abandon: bool,
    /// Exit once the copy is complete instead of serving on.
    #[arg(long, requires = "live")]
    pub exit_when_done: bool,
}

/// `123`, `50K`, `50M`, `1G` (powers of 1024).
fn parse_rate(text: &str) -> Result<u64, String> {
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let shift = match unit {
        "" => 0,
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        _ => return Err(format!("{text}: give bytes per second, like 50M")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text}: give bytes per second, like 50M"))?;
    n.checked_shl(shift)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{text}: give a positive rate, like 50M"))
}

/// `nbd`: serve backups over NBD.
#[derive(Debug, Args)]
pub struct NbdArgs {
    /// Backup ids (or unique prefixes) to serve; each export is named by
    /// its backup's full id.
    #[arg(required = true)]
    pub backups: Vec<String>,
    /// unix:PATH or tcp:127.0.0.1:PORT (loopback only: NBD has no
    /// authentication; tunnel it for remote clients).
    #[arg(long, default_value = "tcp:127.0.0.1:10809")]
    pub listen: String,
    /// Accept writes, into a copy-on-write overlay; the backup is never
    /// written.
    #[arg(long)]
    pub writable: bool,
    /// The overlay file of a --writable export of one backup: kept (with
    /// PATH.map) at the end and continued when it exists [default: a
    /// temporary file, discarded at the end].
    #[arg(long, requires = "writable")]
    pub overlay: Option<std::path::PathBuf>,
    /// At the end, store the export's view (the backup plus the writes)
    /// as a new backup of the volume.
    #[arg(long, requires = "writable")]
    pub save_as_backup: bool,
    /// Most clients connected at once.
    #[arg(long, default_value_t = 64)]
    pub max_connections: usize,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Image file, block device, `rbd:POOL/IMAGE[@SNAP]` or `local:IMAGE` to back up.
    pub source: String,
    /// The volume's display name, stored with the backup as Cinder's
    /// `display_name` [default: the one recorded by its earlier backups;
    /// else none, and the catalog names the volume after its file or image].
    #[arg(long)]
    pub name: Option<String>,
    /// The volume's description (Cinder's `display_description`)
    /// [default: the one recorded by its earlier backups].
    #[arg(long)]
    pub description: Option<String>,
    /// Volume metadata stored with the backup, as KEY=VALUE (repeatable).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// Start a new chain with a full backup.
    #[arg(long, conflicts_with = "incremental")]
    pub full: bool,
    /// Fail instead of starting a new chain when the chain cannot continue.
    #[arg(long)]
    pub incremental: bool,
    /// Backup snapshots kept on a source with snapshots, per chain.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub keep_source_snapshots: u16,
    /// The new backup's id [default: a new one] (Cinder's driver gives
    /// Cinder's backup id, which the snapshot names carry).
    #[arg(long)]
    pub id: Option<uuid::Uuid>,
    /// The volume's id [default: the one its earlier backups recorded,
    /// else a new one] (Cinder's driver gives Cinder's volume id, which
    /// the base image names carry).
    #[arg(long)]
    pub volume_id: Option<uuid::Uuid>,
    /// The backup's `backup.<id>.meta` object, stored as given: a file of
    /// Cinder's backup metadata JSON (version 1 or 2) [default: one made
    /// from --name, --description and --meta].
    #[arg(long, value_name = "FILE", conflicts_with_all = ["name", "description", "meta"])]
    pub metadata_object: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create an empty store.
    Init {
        /// Chunk size in bytes (a power of two, 4 KiB to 4 MiB).
        #[arg(long)]
        chunk_size: Option<u64>,
        /// Encrypt the store: none, aes256gcm or xchacha20poly1305, keyed by
        /// --key-file (written when missing) and/or a passphrase
        /// (--passphrase-file, $BLOCKBACK_PASSPHRASE or a prompt).
        #[arg(long, default_value = "none", value_name = "CIPHER", value_parser = ["none", "aes256gcm", "xchacha20poly1305"])]
        encryption: String,
    },
    /// Sizes, counts, deduplication and compression of the store.
    Stats,
}

/// `key`: the current key comes from --key-file, --passphrase-file,
/// $BLOCKBACK_PASSPHRASE or a prompt; a new passphrase from
/// --new-passphrase-file, $BLOCKBACK_NEW_PASSPHRASE or a prompt (twice).
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// The key slots (ids, kinds, creation times); needs no key.
    List,
    /// Add a key slot: a key file (written when PATH does not exist) or a
    /// passphrase.
    Add {
        /// The new slot's key file.
        #[arg(long, value_name = "PATH", conflicts_with = "new_passphrase_file")]
        new_key_file: Option<PathBuf>,
        /// A file holding the new slot's passphrase.
        #[arg(long, value_name = "PATH")]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Remove a key slot (never the last one).
    Remove {
        /// The slot id, as `key list` shows it.
        id: String,
    },
    /// Replace the passphrase of the slot the current passphrase opens; the
    /// old passphrase stops working.
    ChangePassphrase {
        /// A file holding the new passphrase.
        #[arg(long, value_name = "PATH")]
        new_passphrase_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Set the retention policy of a volume, or the store's default;
    /// replaces the one set before. Counts of 0 are rules that are off.
    Set(PolicySetArgs),
    /// Show the policies set (or the one that applies to --volume).
    Show {
        /// The volume: its source, id (or unique prefix) or name.
        #[arg(long)]
        volume: Option<String>,
    },
    /// Remove the policy of a volume (it then follows the store's
    /// default), or the store's default.
    Unset {
        /// The volume: its source, id (or unique prefix) or name.
        #[arg(long)]
        volume: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct PolicySetArgs {
    /// The volume: its source, id (or unique prefix) or name [default: the
    /// store's default policy, for its volumes without one of their own].
    #[arg(long)]
    pub volume: Option<String>,
    /// Keep the N newest backups.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_last: u32,
    /// Keep the newest backup of each of the N newest hours that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_hourly: u32,
    /// Keep the newest backup of each of the N newest days that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_daily: u32,
    /// Keep the newest backup of each of the N newest ISO weeks that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_weekly: u32,
    /// Keep the newest backup of each of the N newest months that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_monthly: u32,
    /// Keep the newest backup of each of the N newest years that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_yearly: u32,
    /// Keep every backup at most SPAN older than the newest one (7d, 2w,
    /// 36h, 1y 6mo, or ISO 8601 such as P1M).
    #[arg(long, value_name = "SPAN")]
    pub keep_within: Option<String>,
    /// Time zone of the hours, days, weeks, months and years (an IANA
    /// name) [default: the system's, recorded now].
    #[arg(long, value_name = "ZONE")]
    pub time_zone: Option<String>,
    /// At most N backups (snapshots) per chain: a backup that would add
    /// one more starts a new chain with a full backup.
    #[arg(long, value_name = "N")]
    pub max_chain_length: Option<u32>,
}

/// Jobs of `blockback serve` (in the catalog, or through --server).
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Register a volume: rbd:POOL/IMAGE, a file or a block device.
    Add {
        name: String,
        source: String,
        /// The configured cluster of an RBD source [default: the default one].
        #[arg(long)]
        cluster: Option<String>,
    },
    /// The registered volumes.
    List,
    /// One registered volume (id or name).
    Show { volume: String },
    /// Unregister a volume (id or name); its backups stay.
    Remove { volume: String },
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Jobs, oldest first.
    List {
        /// Only jobs in this state (queued, running, succeeded, failed, cancelled).
        #[arg(long)]
        state: Option<String>,
    },
    /// One job with its phase, progress, rate and ETA.
    Show { job: String },
    /// Cancel a queued or running job (a running one stops at its next
    /// heartbeat and cleans up).
    Cancel { job: String },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The service configuration (TOML; every setting can also be given as
    /// BLOCKBACK_<KEY>, nested keys joined by `__`).
    #[arg(long, env = "BLOCKBACK_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub action: Option<ServeAction>,
}

#[derive(Debug, Subcommand)]
pub enum ServeAction {
    /// Make an API token: prints the token (once) and the line for the tokens file.
    Token {
        /// A name for the token (shown in logs).
        #[arg(long)]
        name: String,
        /// `read` (reads only) or `admin`.
        #[arg(long, default_value = "admin", value_parser = ["read", "admin"])]
        role: String,
    },
}
