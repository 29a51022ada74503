//! Deployment packages: checking Lambda zip files and unpacking them into shared, read-only code
//! directories.
//!
//! A package (the zip uploaded base64 in `CreateFunction` / `UpdateFunctionCode`, later also
//! layers) is first [`inspect`]ed without touching the disk, then [`unpack`]ed once per content
//! hash into a directory that every execution environment of that code shares.
//!
//! # Rules
//!
//! * **Sizes.** A zip over [`MAX_ZIPPED_BYTES`] is refused before it is parsed. The sum of the
//!   entries' declared uncompressed sizes must not exceed the caller's limit (normally
//!   [`MAX_UNZIPPED_BYTES`], less whatever layers use). Declared sizes are not trusted: every byte
//!   actually decompressed counts against the same limit, and decompression stops as soon as it
//!   is exceeded (zip bombs); an entry whose data does not match its declared size or checksum
//!   makes the zip unreadable.
//! * **Names.** Entry names are normalised: empty and `.` components are dropped, so
//!   `./bootstrap` is `bootstrap` and `a//b` is `a/b`. A name that is empty or absolute, or that
//!   has a `..` component (even one that would stay inside, such as `a/../b`), a backslash or a
//!   NUL byte is refused as [`CodeError::UnsafeEntry`]. Directory entries are fine.
//! * **Entry types.** The type comes from the unix mode in the external attributes when there is
//!   one (`S_IFREG`, `S_IFDIR`, `S_IFLNK`); without a type, a name ending in `/` is a directory
//!   and anything else a regular file. Devices, FIFOs and sockets are refused.
//! * **Symlinks.** The entry's content is the link target. It must be relative, and, resolved
//!   lexically from the link's own directory, must never leave the package root (the root itself
//!   is fine, so `a -> .` is allowed). Because the kernel resolves `..` *after* following a link,
//!   a target that goes through another symlink of the package and then climbs with `..` is
//!   refused too. No entry may be placed below a symlink of the package (a file `a/f` next to a
//!   link `a -> .` is refused, whichever comes first in the zip), so unpacking never writes
//!   through a link.
//! * **Duplicates: the later entry wins.** Two entries with the same normalised path (`a.txt` and
//!   `./a.txt`, or the same name twice) are not an error: the one later in the central directory
//!   replaces the earlier one, as `unzip -o` does and as the `zip` crate already does for exactly
//!   equal names. Replacing a directory is allowed only while nothing has been placed below it,
//!   and no entry may be placed below a regular file: a path that is both a non-empty directory
//!   and a file or symlink is refused as [`CodeError::UnsafeEntry`], whatever the order.
//!   [`PackageInfo::unzipped_size`] still counts every entry, replaced ones included.
//! * **Modes.** Files and directories keep the permission bits of their unix mode (setuid,
//!   setgid and sticky bits are dropped); entries without a unix mode (zips made on Windows) get
//!   `0644` files and `0755` directories, as do directories that are only implied by a deeper
//!   entry. Once unpacked, every write bit is removed, so a `0755` `bootstrap` ends up `0555`, a
//!   `0644` file `0444` and directories `0555`; [`remove_tree`] can still delete such a tree.
//!   Read bits are kept as given: like Lambda, a package whose files are not readable by the
//!   function's user fails at run time, not here.
//! * **Atomicity.** [`unpack`] writes into a hidden sibling directory (`.<name>.tmp-…`) and renames
//!   it onto the destination only once it is complete, so a crashed process never leaves a
//!   half-written code directory, only a stale hidden sibling that may be removed with
//!   [`remove_tree`]. Files are not fsynced: the rename is atomic with respect to process crashes,
//!   not to power loss.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Cursor, Read, Write};
use std::ops::Bound;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use sha2::{Digest, Sha256};
use zip::read::ZipFile;
use zip::ZipArchive;

/// Largest zip Lambda accepts as a direct upload (50 MB).
pub const MAX_ZIPPED_BYTES: u64 = 52_428_800;

/// Largest unzipped size of a function's code and its layers together (250 MB).
pub const MAX_UNZIPPED_BYTES: u64 = 262_144_000;

/// What [`inspect`] learnt about a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageInfo {
    /// SHA-256 of the zip bytes.
    pub sha256: [u8; 32],
    /// Size of the zip in bytes.
    pub zipped_size: u64,
    /// Sum of the entries' uncompressed sizes (every entry, including directories, symlinks and
    /// entries replaced by a later duplicate).
    pub unzipped_size: u64,
    /// Normalised paths (`/`-separated, no leading `./`) of the regular files the package unpacks
    /// to, sorted component by component. Symlinks and directories are not listed.
    pub entries: Vec<String>,
    /// The subset of [`entries`](Self::entries) with an exec bit set in their unix mode.
    pub executables: Vec<String>,
}

impl PackageInfo {
    /// The SHA-256 in lowercase hex, as used for the code directory's name.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// The SHA-256 in standard base64, as Lambda reports it in `CodeSha256`.
    pub fn sha256_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.sha256)
    }
}

/// Why a package was refused or could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// The bytes are not a zip this module can read: no central directory, a truncated or corrupt
    /// entry, an encrypted entry, an unsupported compression method, or data that does not match
    /// an entry's declared size or checksum.
    #[error("not a readable zip file: {0}")]
    NotAZip(String),
    /// The zip itself is over the limit.
    #[error("zipped package is {size} bytes, over the limit of {limit} bytes")]
    ZippedTooLarge {
        /// Size of the zip.
        size: u64,
        /// The limit it exceeds.
        limit: u64,
    },
    /// The package unzips to more than the limit. `size` is the sum of the declared sizes or, when
    /// the declared sizes lie, the bytes decompressed when the limit was crossed (a lower bound).
    #[error("unzipped package is {size} bytes, over the limit of {limit} bytes")]
    UnzippedTooLarge {
        /// Unzipped size (or a lower bound of it).
        size: u64,
        /// The limit it exceeds.
        limit: u64,
    },
    /// An entry that cannot be placed safely inside the code directory: it would escape it, write
    /// through a symlink, is a special file, or clashes with another entry's type.
    #[error("unsafe zip entry {name:?}: {reason}")]
    UnsafeEntry {
        /// The entry's name as stored in the zip.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file system operation failed while unpacking or removing a tree.
    #[error("file system error at {}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Check a package without writing anything: size limits, every entry readable, no entry escaping.
///
/// The zip is hashed, its central directory checked against the rules of this module, and every
/// entry decompressed (and discarded) to verify its checksum, its size, and the unzipped limit
/// `max_unzipped`.
pub fn inspect(zip: &[u8], max_unzipped: u64) -> Result<PackageInfo, CodeError> {
    check_zipped_size(zip)?;
    let sha256: [u8; 32] = Sha256::digest(zip).into();
    let mut archive = open(zip)?;
    let mut tree = Tree::scan(&mut archive, max_unzipped)?;

    let mut budget = Budget::new(max_unzipped);
    let mut buf = vec![0u8; COPY_BUFFER];
    for index in 0..archive.len() {
        let name = entry_name(&archive, index);
        let mut entry = archive.by_index(index).map_err(|e| unreadable(&name, &e))?;
        if let Some(target) = tree.symlink_target_mut(index) {
            *target = Some(read_link_target(&mut entry, &name, &mut budget, &mut buf)?);
        } else {
            copy_entry(&mut entry, &name, &mut budget, &mut buf, |_| Ok(()))?;
        }
    }
    tree.check_symlinks()?;

    let mut entries = Vec::new();
    let mut executables = Vec::new();
    for (key, node) in &tree.nodes {
        if let Node::File { mode, .. } = node {
            let path = key.join("/");
            if mode & 0o111 != 0 {
                executables.push(path.clone());
            }
            entries.push(path);
        }
    }
    Ok(PackageInfo {
        sha256,
        zipped_size: zip.len() as u64,
        unzipped_size: tree.declared_size,
        entries,
        executables,
    })
}

/// Unpack a package (already inspected) into `dest`, which must not exist yet: unpack into a
/// sibling temporary directory and rename it into place atomically, so a crash never leaves a
/// half-written `dest`. If `dest` appears meanwhile (another unpack of the same hash won the race)
/// that is success. Files keep their unix exec bits (a zip without unix modes gets 0644 files /
/// 0755 dirs); afterwards write bits are removed from every file and directory (read-only code),
/// except that the owner may still delete the tree (see [`remove_tree`]).
///
/// If `dest` already exists as a directory this returns at once: a code directory only ever
/// appears complete. The package is checked again against every rule of this module (with
/// [`MAX_UNZIPPED_BYTES`] as the unzipped limit) before anything is written; on any error the
/// temporary directory is removed and `dest` is left absent. Missing parents of `dest` are
/// created.
pub fn unpack(zip: &[u8], dest: &Path) -> Result<(), CodeError> {
    if dest_ready(dest)? {
        return Ok(());
    }
    check_zipped_size(zip)?;
    let mut archive = open(zip)?;
    let mut tree = Tree::scan(&mut archive, MAX_UNZIPPED_BYTES)?;
    let mut budget = Budget::new(MAX_UNZIPPED_BYTES);
    let mut buf = vec![0u8; COPY_BUFFER];
    tree.load_symlink_targets(&mut archive, &mut budget, &mut buf)?;
    tree.check_symlinks()?;

    let tmp = make_temp_sibling(dest)?;
    let written = tree
        .materialise(&mut archive, &tmp, &mut budget, &mut buf)
        .and_then(|()| fs::rename(&tmp, dest).map_err(|source| io_error(dest, source)));
    match written {
        Ok(()) => Ok(()),
        Err(err) => {
            // Best effort: the original error matters more than a failed clean-up.
            let _ = remove_tree(&tmp);
            match err {
                // Lost the race against another unpack of the same package: its tree is complete.
                CodeError::Io { .. } if dest_ready(dest).unwrap_or(false) => Ok(()),
                err => Err(err),
            }
        }
    }
}

/// Remove an unpacked tree made read-only by [`unpack`] (restores owner write permission on
/// directories first). A missing `dir` is not an error; symlinks inside the tree are removed, never
/// followed, and a symlink given as `dir` is removed itself.
pub fn remove_tree(dir: &Path) -> Result<(), CodeError> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(dir, e)),
    };
    if !meta.is_dir() {
        return fs::remove_file(dir).map_err(|e| io_error(dir, e));
    }
    make_owner_writable(dir, &meta)?;
    fs::remove_dir_all(dir).map_err(|e| io_error(dir, e))
}

/// Give the owner full access to `dir` and every directory below it, top down (so that even a
/// `0000` directory can be entered).
fn make_owner_writable(dir: &Path, meta: &fs::Metadata) -> Result<(), CodeError> {
    let mode = meta.permissions().mode();
    if mode & 0o700 != 0o700 {
        fs::set_permissions(dir, Permissions::from_mode((mode | 0o700) & 0o7777))
            .map_err(|e| io_error(dir, e))?;
    }
    for child in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let child = child.map_err(|e| io_error(dir, e))?;
        let path = child.path();
        // `DirEntry::metadata` does not follow symlinks.
        let child_meta = child.metadata().map_err(|e| io_error(&path, e))?;
        if child_meta.is_dir() {
            make_owner_writable(&path, &child_meta)?;
        }
    }
    Ok(())
}

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

/// Permission bits kept from an entry's mode (no setuid, setgid or sticky bit).
const PERM_BITS: u32 = 0o777;
const WRITE_BITS: u32 = 0o222;
const DEFAULT_FILE_MODE: u32 = 0o644;
const DEFAULT_DIR_MODE: u32 = 0o755;

/// Longest symlink target accepted (Linux's `PATH_MAX` less the NUL).
const MAX_LINK_TARGET: u64 = 4095;

/// Buffer for decompressing entries.
const COPY_BUFFER: usize = 128 * 1024;

fn check_zipped_size(zip: &[u8]) -> Result<(), CodeError> {
    let size = zip.len() as u64;
    if size > MAX_ZIPPED_BYTES {
        return Err(CodeError::ZippedTooLarge {
            size,
            limit: MAX_ZIPPED_BYTES,
        });
    }
    Ok(())
}

fn open(zip: &[u8]) -> Result<ZipArchive<Cursor<&[u8]>>, CodeError> {
    ZipArchive::new(Cursor::new(zip)).map_err(|e| CodeError::NotAZip(e.to_string()))
}

/// The name of entry `index`, for messages about it.
fn entry_name<R: Read + io::Seek>(archive: &ZipArchive<R>, index: usize) -> String {
    archive.name_for_index(index).unwrap_or_default().to_owned()
}

fn unreadable(name: &str, err: &zip::result::ZipError) -> CodeError {
    CodeError::NotAZip(format!("entry {name:?}: {err}"))
}

fn io_error(path: &Path, source: io::Error) -> CodeError {
    CodeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn unsafe_entry(name: &str, reason: &'static str) -> CodeError {
    CodeError::UnsafeEntry {
        name: name.to_owned(),
        reason,
    }
}

/// Whether `dest` already holds an unpacked tree.
fn dest_ready(dest: &Path) -> Result<bool, CodeError> {
    match fs::symlink_metadata(dest) {
        Ok(meta) if meta.is_dir() => Ok(true),
        Ok(_) => Err(io_error(
            dest,
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a directory",
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error(dest, e)),
    }
}

/// Create an empty, owner-only directory next to `dest` with a name no other unpack uses.
fn make_temp_sibling(dest: &Path) -> Result<PathBuf, CodeError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let invalid = || {
        io_error(
            dest,
            io::Error::new(io::ErrorKind::InvalidInput, "destination has no file name"),
        )
    };
    let file_name = dest.file_name().ok_or_else(invalid)?;
    let parent = dest.parent().ok_or_else(invalid)?;
    fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut attempts = 0;
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = parent.join(format!(
            ".{}.tmp-{}-{nanos:x}-{n}",
            file_name.to_string_lossy(),
            std::process::id()
        ));
        match fs::DirBuilder::new().mode(0o700).create(&tmp) {
            Ok(()) => return Ok(tmp),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => attempts += 1,
            Err(e) => return Err(io_error(&tmp, e)),
        }
    }
}

/// Counts the bytes actually decompressed against the unzipped limit.
struct Budget {
    used: u64,
    limit: u64,
}

impl Budget {
    fn new(limit: u64) -> Self {
        Budget { used: 0, limit }
    }

    fn spend(&mut self, bytes: usize) -> Result<(), CodeError> {
        self.used = self.used.saturating_add(bytes as u64);
        if self.used > self.limit {
            return Err(CodeError::UnzippedTooLarge {
                size: self.used,
                limit: self.limit,
            });
        }
        Ok(())
    }
}

/// Decompress one entry chunk by chunk into `sink`, charging `budget`, and check that its data is
/// exactly as long as declared (the `zip` crate checks the CRC when the data ends).
fn copy_entry<R: Read>(
    entry: &mut ZipFile<'_, R>,
    name: &str,
    budget: &mut Budget,
    buf: &mut [u8],
    mut sink: impl FnMut(&[u8]) -> Result<(), CodeError>,
) -> Result<(), CodeError> {
    let declared = entry.size();
    let mut actual: u64 = 0;
    loop {
        let n = match entry.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CodeError::NotAZip(format!("entry {name:?}: {e}"))),
        };
        budget.spend(n)?;
        actual += n as u64;
        if actual > declared {
            return Err(CodeError::NotAZip(format!(
                "entry {name:?} holds more than its declared {declared} bytes"
            )));
        }
        sink(&buf[..n])?;
    }
    if actual != declared {
        return Err(CodeError::NotAZip(format!(
            "entry {name:?} holds {actual} bytes, not its declared {declared}"
        )));
    }
    Ok(())
}

/// Read a symlink entry's content, its target.
fn read_link_target<R: Read>(
    entry: &mut ZipFile<'_, R>,
    name: &str,
    budget: &mut Budget,
    buf: &mut [u8],
) -> Result<Vec<u8>, CodeError> {
    if entry.size() > MAX_LINK_TARGET {
        return Err(unsafe_entry(name, "symlink target is too long"));
    }
    let mut target = Vec::with_capacity(entry.size() as usize);
    copy_entry(entry, name, budget, buf, |chunk| {
        target.extend_from_slice(chunk);
        Ok(())
    })?;
    Ok(target)
}

/// A path inside the package, as its normalised components. Ordering a `BTreeMap` by it puts
/// every directory right before its contents.
type Key = Vec<String>;

/// What ends up at a path once the whole zip is applied.
#[derive(Debug)]
enum Node {
    /// A directory, listed or implied by a deeper entry; `mode` is its permission bits.
    Dir { mode: u32 },
    /// A regular file from entry `index`; `mode` is its permission bits.
    File {
        index: usize,
        mode: u32,
        name: String,
    },
    /// A symlink from entry `index`; the target is filled in once the entry has been read.
    Symlink {
        index: usize,
        name: String,
        target: Option<Vec<u8>>,
    },
}

/// The package's final layout (later duplicates applied), checked entry by entry.
#[derive(Debug)]
struct Tree {
    nodes: BTreeMap<Key, Node>,
    /// Entry index of every node that is a symlink, to fill in targets by index.
    links: BTreeMap<usize, Key>,
    declared_size: u64,
}

impl Tree {
    /// Walk the central directory: check every name and type, build the final layout and check
    /// the declared sizes against `max_unzipped`. Reads no entry data.
    fn scan<R: Read + io::Seek>(
        archive: &mut ZipArchive<R>,
        max_unzipped: u64,
    ) -> Result<Tree, CodeError> {
        let mut tree = Tree {
            nodes: BTreeMap::new(),
            links: BTreeMap::new(),
            declared_size: 0,
        };
        for index in 0..archive.len() {
            let owned_name = entry_name(archive, index);
            let name = owned_name.as_str();
            let entry = archive
                .by_index_raw(index)
                .map_err(|e| unreadable(name, &e))?;
            tree.declared_size = tree.declared_size.saturating_add(entry.size());
            let key = normalise(name).map_err(|reason| unsafe_entry(name, reason))?;
            // A mode of 0 means the archiver recorded no unix mode at all.
            let mode = entry.unix_mode().filter(|&m| m != 0);
            let perms = mode.map(|m| m & PERM_BITS);
            let node = match mode.map_or(0, |m| m & S_IFMT) {
                S_IFLNK => Node::Symlink {
                    index,
                    name: name.to_owned(),
                    target: None,
                },
                S_IFDIR => Node::Dir {
                    mode: perms.unwrap_or(DEFAULT_DIR_MODE),
                },
                0 | S_IFREG if name.ends_with('/') => Node::Dir {
                    mode: perms.unwrap_or(DEFAULT_DIR_MODE),
                },
                0 | S_IFREG => Node::File {
                    index,
                    mode: perms.unwrap_or(DEFAULT_FILE_MODE),
                    name: name.to_owned(),
                },
                _ => {
                    return Err(unsafe_entry(
                        name,
                        "special file type (device, fifo or socket)",
                    ))
                }
            };
            tree.insert(key, node, name)?;
        }
        if tree.declared_size > max_unzipped {
            return Err(CodeError::UnzippedTooLarge {
                size: tree.declared_size,
                limit: max_unzipped,
            });
        }
        tree.links = tree
            .nodes
            .iter()
            .filter_map(|(key, node)| match node {
                Node::Symlink { index, .. } => Some((*index, key.clone())),
                _ => None,
            })
            .collect();
        Ok(tree)
    }

    /// Place `node` at `key`, the later entry replacing an earlier one at the same path.
    fn insert(&mut self, key: Key, node: Node, name: &str) -> Result<(), CodeError> {
        if key.is_empty() {
            // `./` and the like: the package root itself, which is always a directory.
            return match node {
                Node::Dir { .. } => Ok(()),
                _ => Err(unsafe_entry(name, "empty path")),
            };
        }
        for depth in 1..key.len() {
            match self.nodes.get(&key[..depth]) {
                Some(Node::Dir { .. }) => {}
                Some(Node::File { .. }) => {
                    return Err(unsafe_entry(
                        name,
                        "a parent path is a regular file in the package",
                    ))
                }
                Some(Node::Symlink { .. }) => {
                    return Err(unsafe_entry(
                        name,
                        "path goes through a symlink in the package",
                    ))
                }
                None => {
                    self.nodes.insert(
                        key[..depth].to_vec(),
                        Node::Dir {
                            mode: DEFAULT_DIR_MODE,
                        },
                    );
                }
            }
        }
        if let (Some(Node::Dir { .. }), Node::File { .. } | Node::Symlink { .. }) =
            (self.nodes.get(&key), &node)
        {
            if self.has_children(&key) {
                return Err(unsafe_entry(
                    name,
                    "replaces a directory that has entries below it",
                ));
            }
        }
        self.nodes.insert(key, node);
        Ok(())
    }

    fn has_children(&self, key: &[String]) -> bool {
        self.nodes
            .range::<[String], _>((Bound::Excluded(key), Bound::Unbounded))
            .next()
            .is_some_and(|(next, _)| next.starts_with(key))
    }

    /// The target slot of entry `index` if it is one of the final symlinks.
    fn symlink_target_mut(&mut self, index: usize) -> Option<&mut Option<Vec<u8>>> {
        let key = self.links.get(&index)?;
        match self.nodes.get_mut(key) {
            Some(Node::Symlink { target, .. }) => Some(target),
            _ => None,
        }
    }

    /// Read the targets of the final symlinks (and nothing else).
    fn load_symlink_targets<R: Read + io::Seek>(
        &mut self,
        archive: &mut ZipArchive<R>,
        budget: &mut Budget,
        buf: &mut [u8],
    ) -> Result<(), CodeError> {
        let indices: Vec<usize> = self.links.keys().copied().collect();
        for index in indices {
            let name = entry_name(archive, index);
            let mut entry = archive.by_index(index).map_err(|e| unreadable(&name, &e))?;
            let target = read_link_target(&mut entry, &name, budget, buf)?;
            if let Some(slot) = self.symlink_target_mut(index) {
                *slot = Some(target);
            }
        }
        Ok(())
    }

    /// Check every symlink's target (all targets must have been loaded).
    fn check_symlinks(&self) -> Result<(), CodeError> {
        for (key, node) in &self.nodes {
            if let Node::Symlink { name, target, .. } = node {
                let target = target.as_deref().unwrap_or_default();
                self.check_target(key, target)
                    .map_err(|reason| unsafe_entry(name, reason))?;
            }
        }
        Ok(())
    }

    /// Resolve `target` lexically from the directory of the link at `link`; it must stay inside
    /// the root, and must not climb with `..` once it has gone through another link (the kernel
    /// would climb from wherever that link points).
    fn check_target(&self, link: &[String], target: &[u8]) -> Result<(), &'static str> {
        if target.is_empty() {
            return Err("symlink target is empty");
        }
        if target.contains(&0) {
            return Err("symlink target contains a nul byte");
        }
        if target.contains(&b'\\') {
            return Err("symlink target contains a backslash");
        }
        if target.starts_with(b"/") {
            return Err("symlink target is absolute");
        }
        let mut at: Vec<String> = link[..link.len() - 1].to_vec();
        let mut via_link = false;
        for component in target.split(|&b| b == b'/') {
            match component {
                b"" | b"." => {}
                b".." => {
                    if via_link {
                        return Err("symlink target climbs out of another symlink");
                    }
                    if at.pop().is_none() {
                        return Err("symlink target escapes the package");
                    }
                }
                component => match std::str::from_utf8(component) {
                    Ok(component) if !via_link => {
                        at.push(component.to_owned());
                        via_link = matches!(self.nodes.get(&at), Some(Node::Symlink { .. }));
                    }
                    // Past a link the lexical position no longer matters (only `..` would), and
                    // a name that is not UTF-8 cannot be an entry of the package: a dangling
                    // remainder the kernel will fail to resolve, or another link's business.
                    _ => via_link = true,
                },
            }
        }
        Ok(())
    }

    /// Write the tree into the empty directory `root`, then remove every write bit.
    fn materialise<R: Read + io::Seek>(
        &self,
        archive: &mut ZipArchive<R>,
        root: &Path,
        budget: &mut Budget,
        buf: &mut [u8],
    ) -> Result<(), CodeError> {
        for (key, node) in &self.nodes {
            let path = key.iter().fold(root.to_path_buf(), |p, c| p.join(c));
            match node {
                Node::Dir { .. } => fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&path)
                    .map_err(|e| io_error(&path, e))?,
                Node::File { index, mode, name } => {
                    let mut entry = archive.by_index(*index).map_err(|e| unreadable(name, &e))?;
                    let mut file = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&path)
                        .map_err(|e| io_error(&path, e))?;
                    copy_entry(&mut entry, name, budget, buf, |chunk| {
                        file.write_all(chunk).map_err(|e| io_error(&path, e))
                    })?;
                    set_mode(&file, *mode & !WRITE_BITS).map_err(|e| io_error(&path, e))?;
                }
                Node::Symlink { target, .. } => {
                    let target = target.as_deref().unwrap_or_default();
                    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &path)
                        .map_err(|e| io_error(&path, e))?;
                }
            }
        }
        // Children before parents, so that a directory is locked only once it is complete.
        for (key, node) in self.nodes.iter().rev() {
            if let Node::Dir { mode } = node {
                let path = key.iter().fold(root.to_path_buf(), |p, c| p.join(c));
                fs::set_permissions(&path, Permissions::from_mode(*mode & !WRITE_BITS))
                    .map_err(|e| io_error(&path, e))?;
            }
        }
        fs::set_permissions(root, Permissions::from_mode(DEFAULT_DIR_MODE & !WRITE_BITS))
            .map_err(|e| io_error(root, e))
    }
}

fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    file.set_permissions(Permissions::from_mode(mode))
}

/// Split an entry name into its components, refusing anything that could leave the root.
fn normalise(name: &str) -> Result<Key, &'static str> {
    if name.is_empty() {
        return Err("empty path");
    }
    if name.contains('\0') {
        return Err("name contains a nul byte");
    }
    if name.contains('\\') {
        return Err("name contains a backslash");
    }
    if name.starts_with('/') {
        return Err("absolute path");
    }
    let mut key = Vec::new();
    for component in name.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err("path has a `..` component"),
            component => key.push(component.to_owned()),
        }
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use zip::write::SimpleFileOptions;
    use zip::ZipWriter;

    /// One entry of a test zip.
    enum E<'a> {
        /// A regular file with its content and unix permissions.
        File(&'a str, &'a [u8], u32),
        /// A directory.
        Dir(&'a str),
        /// A symlink and its target.
        Link(&'a str, &'a str),
    }

    fn build(entries: &[E<'_>]) -> Vec<u8> {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        for e in entries {
            match e {
                E::File(name, data, mode) => {
                    w.start_file(*name, SimpleFileOptions::default().unix_permissions(*mode))
                        .unwrap();
                    w.write_all(data).unwrap();
                }
                E::Dir(name) => w
                    .add_directory(*name, SimpleFileOptions::default())
                    .unwrap(),
                E::Link(name, target) => w
                    .add_symlink(*name, *target, SimpleFileOptions::default())
                    .unwrap(),
            }
        }
        w.finish().unwrap().into_inner()
    }

    fn u16_at(b: &[u8], at: usize) -> usize {
        usize::from(u16::from_le_bytes([b[at], b[at + 1]]))
    }

    fn u32_at(b: &[u8], at: usize) -> usize {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
    }

    /// Offsets of the central directory headers, with the local header offset and name of each
    /// (test zips have no comment and no zip64 records).
    fn headers(zip: &[u8]) -> Vec<(usize, usize, String)> {
        let eocd = zip.len() - 22;
        assert_eq!(&zip[eocd..eocd + 4], b"PK\x05\x06");
        let count = u16_at(zip, eocd + 10);
        let mut at = u32_at(zip, eocd + 16);
        let mut out = Vec::new();
        for _ in 0..count {
            assert_eq!(&zip[at..at + 4], b"PK\x01\x02");
            let (n, m, k) = (
                u16_at(zip, at + 28),
                u16_at(zip, at + 30),
                u16_at(zip, at + 32),
            );
            let name = String::from_utf8_lossy(&zip[at + 46..at + 46 + n]).into_owned();
            out.push((at, u32_at(zip, at + 42), name));
            at += 46 + n + m + k;
        }
        out
    }

    /// Edit the central header (and its local header) of entry `name`.
    fn patch(zip: &mut [u8], name: &str, edit: impl Fn(&mut [u8], usize, usize)) {
        let (central, local, _) = headers(zip)
            .into_iter()
            .find(|(_, _, n)| n == name)
            .unwrap_or_else(|| panic!("no entry {name}"));
        edit(zip, central, local);
    }

    fn temp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn mode_of(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    fn dir_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Expect `result` to refuse `entry`; returns the reason.
    fn assert_unsafe(result: Result<PackageInfo, CodeError>, entry: &str) -> &'static str {
        match result {
            Err(CodeError::UnsafeEntry { name, reason }) => {
                assert_eq!(name, entry);
                reason
            }
            other => panic!("expected an unsafe entry {entry:?}, got {other:?}"),
        }
    }

    /// `unpack` must refuse what `inspect` refuses, and leave nothing behind.
    fn assert_unpack_fails(zip: &[u8]) -> CodeError {
        let dir = temp();
        let dest = dir.path().join("code");
        let err = unpack(zip, &dest).unwrap_err();
        assert!(!dest.exists());
        assert!(
            dir_names(dir.path()).is_empty(),
            "left {:?}",
            dir_names(dir.path())
        );
        err
    }

    #[test]
    fn garbage_empty_and_truncated_zips_are_not_zips() {
        let good = build(&[E::File("bootstrap", b"#!/bin/sh\necho hi\n", 0o755)]);
        let noise: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
        for bytes in [
            &noise[..],
            &[][..],
            &good[..good.len() / 2],
            &good[..good.len() - 1],
        ] {
            assert!(
                matches!(
                    inspect(bytes, MAX_UNZIPPED_BYTES),
                    Err(CodeError::NotAZip(_))
                ),
                "{:?}",
                inspect(bytes, MAX_UNZIPPED_BYTES)
            );
            assert!(matches!(assert_unpack_fails(bytes), CodeError::NotAZip(_)));
        }
    }

    #[test]
    fn corrupt_entry_data_is_not_a_zip() {
        let mut zip = build(&[E::File("a.txt", b"hello hello hello", 0o644)]);
        patch(&mut zip, "a.txt", |z, _, local| {
            let data = local + 30 + u16_at(z, local + 26) + u16_at(z, local + 28);
            z[data] ^= 0xff;
        });
        let err = inspect(&zip, MAX_UNZIPPED_BYTES).unwrap_err();
        assert!(matches!(err, CodeError::NotAZip(_)), "{err:?}");
        assert!(err.to_string().contains("a.txt"), "{err}");
        assert!(matches!(assert_unpack_fails(&zip), CodeError::NotAZip(_)));
    }

    #[test]
    fn encrypted_entries_are_not_readable() {
        let mut zip = build(&[E::File("a.txt", b"secret", 0o644)]);
        patch(&mut zip, "a.txt", |z, central, local| {
            z[central + 8] |= 1;
            z[local + 6] |= 1;
        });
        assert!(matches!(
            inspect(&zip, MAX_UNZIPPED_BYTES),
            Err(CodeError::NotAZip(_))
        ));
    }

    #[test]
    fn zipped_size_is_checked_before_parsing() {
        let huge = vec![0u8; MAX_ZIPPED_BYTES as usize + 1];
        let expected = |r: Result<(), CodeError>| {
            matches!(r, Err(CodeError::ZippedTooLarge { size, limit })
                if size == MAX_ZIPPED_BYTES + 1 && limit == MAX_ZIPPED_BYTES)
        };
        assert!(expected(inspect(&huge, MAX_UNZIPPED_BYTES).map(|_| ())));
        let dir = temp();
        assert!(expected(unpack(&huge, &dir.path().join("code"))));
        // Exactly at the limit it is parsed (and these zeros are no zip).
        assert!(matches!(
            inspect(&huge[1..], MAX_UNZIPPED_BYTES),
            Err(CodeError::NotAZip(_))
        ));
    }

    #[test]
    fn declared_unzipped_size_is_limited() {
        let zip = build(&[
            E::File("a", &[b'a'; 600], 0o644),
            E::File("b", &[b'b'; 400], 0o644),
        ]);
        let info = inspect(&zip, 1000).unwrap();
        assert_eq!(info.unzipped_size, 1000);
        match inspect(&zip, 999) {
            Err(CodeError::UnzippedTooLarge { size, limit }) => {
                assert_eq!((size, limit), (1000, 999));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lying_sizes_do_not_get_past_the_limit() {
        // A megabyte of zeros deflates to about a kilobyte; claim it is 10 bytes.
        let mut zip = build(&[E::File("bomb", &vec![0u8; 1 << 20], 0o644)]);
        patch(&mut zip, "bomb", |z, central, local| {
            z[central + 24..central + 28].copy_from_slice(&10u32.to_le_bytes());
            z[local + 22..local + 26].copy_from_slice(&10u32.to_le_bytes());
        });
        match inspect(&zip, 1000) {
            Err(CodeError::UnzippedTooLarge { size, limit }) => {
                assert_eq!(limit, 1000);
                assert!(size > 1000 && size <= 1000 + COPY_BUFFER as u64, "{size}");
            }
            other => panic!("{other:?}"),
        }
        // Under a large limit the lie itself makes the zip unreadable.
        let err = inspect(&zip, MAX_UNZIPPED_BYTES).unwrap_err();
        assert!(
            matches!(&err, CodeError::NotAZip(m) if m.contains("bomb")),
            "{err}"
        );
        assert!(matches!(assert_unpack_fails(&zip), CodeError::NotAZip(_)));
    }

    #[test]
    fn escaping_names_are_refused() {
        for (name, why) in [
            ("../x", ".."),
            ("a/../../x", ".."),
            ("a/../b", ".."),
            ("..", ".."),
            ("/etc/x", "absolute"),
            ("..\\x", "backslash"),
            ("a\\..\\..\\x", "backslash"),
            ("\\x", "backslash"),
            ("a\0b", "nul"),
        ] {
            let zip = build(&[E::File("ok", b"", 0o644), E::File(name, b"x", 0o644)]);
            let reason = assert_unsafe(inspect(&zip, MAX_UNZIPPED_BYTES), name);
            assert!(reason.contains(why), "{name:?}: {reason}");
            assert!(matches!(
                assert_unpack_fails(&zip),
                CodeError::UnsafeEntry { .. }
            ));
        }
        let zip = build(&[E::Dir("../up")]);
        assert_unsafe(inspect(&zip, MAX_UNZIPPED_BYTES), "../up/");
    }

    #[test]
    fn special_files_are_refused() {
        let mut zip = build(&[E::File("fifo", b"", 0o644)]);
        patch(&mut zip, "fifo", |z, central, _| {
            z[central + 38..central + 42].copy_from_slice(&((0o010_644u32) << 16).to_le_bytes());
        });
        let reason = assert_unsafe(inspect(&zip, MAX_UNZIPPED_BYTES), "fifo");
        assert!(reason.contains("special"), "{reason}");
    }

    #[test]
    fn names_are_normalised_and_directories_accepted() {
        let zip = build(&[
            E::Dir("lib"),
            E::File("./bootstrap", b"#!/bin/sh\n", 0o755),
            E::File("lib//libx.so", b"elf", 0o755),
            E::File("lib/./data.txt", b"data", 0o644),
            E::File("deep/er/f", b"f", 0o644),
            E::Dir("./"),
        ]);
        let info = inspect(&zip, MAX_UNZIPPED_BYTES).unwrap();
        assert_eq!(
            info.entries,
            ["bootstrap", "deep/er/f", "lib/data.txt", "lib/libx.so"]
        );
        assert_eq!(info.executables, ["bootstrap", "lib/libx.so"]);

        let dir = temp();
        let dest = dir.path().join("code");
        unpack(&zip, &dest).unwrap();
        assert_eq!(dir_names(&dest), ["bootstrap", "deep", "lib"]);
        assert_eq!(fs::read(dest.join("lib/data.txt")).unwrap(), b"data");
        assert_eq!(fs::read(dest.join("deep/er/f")).unwrap(), b"f");
    }

    #[test]
    fn info_hashes_and_sizes() {
        let zip = build(&[
            E::File("bootstrap", b"#!/bin/sh\n", 0o755),
            E::Dir("lib"),
            E::Link("lib/cur", "."),
        ]);
        let info = inspect(&zip, MAX_UNZIPPED_BYTES).unwrap();
        let digest = Sha256::digest(&zip);
        assert_eq!(info.sha256, <[u8; 32]>::from(digest));
        assert_eq!(info.sha256_hex(), hex::encode(digest));
        assert_eq!(info.sha256_hex().len(), 64);
        assert_eq!(
            info.sha256_base64(),
            base64::engine::general_purpose::STANDARD.encode(digest)
        );
        assert_eq!(info.zipped_size, zip.len() as u64);
        // The file's 10 bytes plus the link's target, 1 byte.
        assert_eq!(info.unzipped_size, 11);
        assert_eq!(info.entries, ["bootstrap"]);
    }

    #[test]
    fn contained_symlinks_are_unpacked_as_symlinks() {
        let zip = build(&[
            E::File("bootstrap", b"#!/bin/sh\n", 0o755),
            E::File("lib/libfoo.so.1", b"elf", 0o644),
            E::Link("lib/libfoo.so", "libfoo.so.1"),
            E::Link("lib/boot", "../bootstrap"),
            E::Link("cur", "."),
            E::Link("lib/root", ".."),
            E::Link("roundabout", "lib/../lib/./libfoo.so"),
            E::Link("chain", "lib/root/lib/libfoo.so"),
            E::Link("dangling", "nowhere/at/all"),
        ]);
        let info = inspect(&zip, MAX_UNZIPPED_BYTES).unwrap();
        assert_eq!(info.entries, ["bootstrap", "lib/libfoo.so.1"]);

        let dir = temp();
        let dest = dir.path().join("code");
        unpack(&zip, &dest).unwrap();
        let link = |p: &str| fs::read_link(dest.join(p)).unwrap();
        assert_eq!(link("lib/libfoo.so"), Path::new("libfoo.so.1"));
        assert_eq!(link("lib/boot"), Path::new("../bootstrap"));
        assert_eq!(link("cur"), Path::new("."));
        assert_eq!(link("dangling"), Path::new("nowhere/at/all"));
        assert_eq!(fs::read(dest.join("chain")).unwrap(), b"elf");
        assert_eq!(fs::read(dest.join("lib/boot")).unwrap(), b"#!/bin/sh\n");
        assert_eq!(fs::read(dest.join("cur/lib/libfoo.so")).unwrap(), b"elf");
    }

    #[test]
    fn escaping_symlinks_are_refused() {
        for (link, target, why) in [
            ("x", "/etc/passwd", "absolute"),
            ("x", "..", "escapes"),
            ("x", "../code", "escapes"),
            ("lib/x", "../../etc", "escapes"),
            ("x", "lib/../../etc", "escapes"),
            ("x", "", "empty"),
            ("x", "..\\..\\etc", "backslash"),
        ] {
            let zip = build(&[E::File("lib/f", b"f", 0o644), E::Link(link, target)]);
            let reason = assert_unsafe(inspect(&zip, MAX_UNZIPPED_BYTES), link);
            assert!(reason.contains(why), "{target:?}: {reason}");
            assert!(matches!(
                assert_unpack_fails(&zip),
                CodeError::UnsafeEntry { .. }
            ));
        }
        // `d/..` looks like the root, but the kernel climbs from where `d` points.
        for entries in [
            [E::Link("d", "lib"), E::Link("x", "d/..")],
            [E::Link("x", "d/../lib"), E::Link("d", "lib")],
        ] {
            let zip = build(&entries);
            let reason = assert_unsafe(inspect(&zip, MAX_UNZIPPED_BYTES), "x");
            assert!(reason.contains("another symlink"), "{reason}");
        }
        let long = "a/".repeat(2048);
        let zip = build(&[E::Link("x", &long)]);
        let reason = assert_unsafe(inspect(&zip, MAX_UNZIPPED_BYTES), "x");
        assert!(reason.contains("too long"), "{reason}");
    }

    #[test]
    fn nothing_goes_through_a_symlink() {
        let zip = build(&[E::Link("a", "."), E::File("a/f", b"f", 0o644)]);
        let reason = assert_unsafe(inspect(&zip, MAX_UNZIPPED_BYTES), "a/f");
        assert!(reason.contains("through a symlink"), "{reason}");
        let zip = build(&[E::Link("a", "."), E::Link("a/l", "..")]);
        assert_unsafe(inspect(&zip, MAX_UNZIPPED_BYTES), "a/l");
        let zip = build(&[E::Link("a", "."), E::Dir("a/sub")]);
        assert_unsafe(inspect(&zip, MAX_UNZIPPED_BYTES), "a/sub/");
        // The other order: the link would replace a directory that has contents.
        let zip = build(&[E::File("a/f", b"f", 0o644), E::Link("a", ".")]);
        let reason = assert_unsafe(inspect(&zip, MAX_UNZIPPED_BYTES), "a");
        assert!(reason.contains("replaces a directory"), "{reason}");
        assert!(matches!(
            assert_unpack_fails(&zip),
            CodeError::UnsafeEntry { .. }
        ));
    }

    #[test]
    fn later_duplicates_win() {
        let zip = build(&[
            E::File("a.txt", b"first", 0o755),
            E::File("keep", b"k", 0o644),
            E::File("./a.txt", b"second", 0o644),
        ]);
        let info = inspect(&zip, MAX_UNZIPPED_BYTES).unwrap();
        assert_eq!(info.entries, ["a.txt", "keep"]);
        assert!(info.executables.is_empty());
        assert_eq!(info.unzipped_size, 5 + 1 + 6);
        let dir = temp();
        let dest = dir.path().join("code");
        unpack(&zip, &dest).unwrap();
        assert_eq!(fs::read(dest.join("a.txt")).unwrap(), b"second");
        assert_eq!(mode_of(&dest.join("a.txt")), 0o444);

        // The very same name twice (the writer refuses that, so rename `b.txt` afterwards).
        let mut zip = build(&[
            E::File("a.txt", b"first", 0o644),
            E::File("b.txt", b"second", 0o644),
        ]);
        patch(&mut zip, "b.txt", |z, central, local| {
            z[central + 46] = b'a';
            z[local + 30] = b'a';
        });
        assert_eq!(headers(&zip)[1].2, "a.txt");
        let info = inspect(&zip, MAX_UNZIPPED_BYTES).unwrap();
        assert_eq!(info.entries, ["a.txt"]);
        let dest = dir.path().join("code2");
        unpack(&zip, &dest).unwrap();
        assert_eq!(fs::read(dest.join("a.txt")).unwrap(), b"second");

        // A later link may replace a file, and a later (empty) directory a link.
        let zip = build(&[
            E::File("x", b"x", 0o644),
            E::Link("./x", "y"),
            E::Link("d", "."),
            E::Dir("d"),
            E::File("d/f", b"f", 0o644),
        ]);
        let info = inspect(&zip, MAX_UNZIPPED_BYTES).unwrap();
        assert_eq!(info.entries, ["d/f"]);
        let dest = dir.path().join("code3");
        unpack(&zip, &dest).unwrap();
        assert_eq!(fs::read_link(dest.join("x")).unwrap(), Path::new("y"));
        assert!(fs::symlink_metadata(dest.join("d")).unwrap().is_dir());
    }

    #[test]
    fn a_path_cannot_be_both_a_file_and_a_directory() {
        let zip = build(&[E::File("a", b"a", 0o644), E::File("a/b", b"b", 0o644)]);
        let reason = assert_unsafe(inspect(&zip, MAX_UNZIPPED_BYTES), "a/b");
        assert!(reason.contains("regular file"), "{reason}");
        let zip = build(&[E::File("a/b", b"b", 0o644), E::File("./a", b"a", 0o644)]);
        assert_unsafe(inspect(&zip, MAX_UNZIPPED_BYTES), "./a");
        // A file replaced by an empty directory is just a later duplicate.
        let zip = build(&[E::File("a", b"a", 0o644), E::Dir("a")]);
        assert!(inspect(&zip, MAX_UNZIPPED_BYTES)
            .unwrap()
            .entries
            .is_empty());
    }

    #[test]
    fn exec_bits_survive_and_write_bits_do_not() {
        let zip = build(&[
            E::File("bootstrap", b"#!/bin/sh\n", 0o755),
            E::File("bin/tool", b"x", 0o700),
            E::File("data.json", b"{}", 0o664),
            E::File("secret", b"s", 0o600),
        ]);
        let info = inspect(&zip, MAX_UNZIPPED_BYTES).unwrap();
        assert_eq!(info.executables, ["bin/tool", "bootstrap"]);

        let dir = temp();
        let dest = dir.path().join("code");
        unpack(&zip, &dest).unwrap();
        assert_eq!(mode_of(&dest.join("bootstrap")), 0o555);
        assert_eq!(mode_of(&dest.join("bin/tool")), 0o500);
        assert_eq!(mode_of(&dest.join("data.json")), 0o444);
        assert_eq!(mode_of(&dest.join("secret")), 0o400);
        assert_eq!(mode_of(&dest.join("bin")), 0o555);
        assert_eq!(mode_of(&dest), 0o555);
    }

    #[test]
    fn zips_without_unix_modes_get_default_modes() {
        let mut zip = build(&[
            E::Dir("lib"),
            E::File("lib/x.py", b"print(1)", 0o755),
            E::File("handler.py", b"", 0o755),
        ]);
        for (_, _, name) in headers(&zip) {
            patch(&mut zip, &name, |z, central, _| {
                z[central + 5] = 0; // made by MS-DOS
                z[central + 38..central + 42].copy_from_slice(&[0; 4]);
            });
        }
        let info = inspect(&zip, MAX_UNZIPPED_BYTES).unwrap();
        assert_eq!(info.entries, ["handler.py", "lib/x.py"]);
        assert!(info.executables.is_empty());

        let dir = temp();
        let dest = dir.path().join("code");
        unpack(&zip, &dest).unwrap();
        assert_eq!(mode_of(&dest.join("lib")), 0o555);
        assert_eq!(mode_of(&dest.join("lib/x.py")), 0o444);
        assert_eq!(mode_of(&dest.join("handler.py")), 0o444);
    }

    #[test]
    fn unpack_is_atomic_and_idempotent() {
        let zip = build(&[
            E::File("bootstrap", b"#!/bin/sh\n", 0o755),
            E::File("lib/a", &[b'a'; 300_000], 0o644),
        ]);
        let dir = temp();
        let dest = dir.path().join("store").join("abc123");
        unpack(&zip, &dest).unwrap();
        assert_eq!(dir_names(dest.parent().unwrap()), ["abc123"]);
        assert_eq!(fs::read(dest.join("lib/a")).unwrap(), vec![b'a'; 300_000]);

        // An existing destination is success, and left alone.
        let other = build(&[E::File("other", b"", 0o644)]);
        unpack(&other, &dest).unwrap();
        assert_eq!(dir_names(&dest), ["bootstrap", "lib"]);

        // Racing unpacks of the same package all succeed and leave one complete tree.
        let racy = dir.path().join("store").join("racy");
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| unpack(&zip, &racy).unwrap());
            }
        });
        assert_eq!(dir_names(&racy), ["bootstrap", "lib"]);
        assert_eq!(fs::read(racy.join("lib/a")).unwrap().len(), 300_000);
        assert_eq!(dir_names(dest.parent().unwrap()), ["abc123", "racy"]);

        // A file in the way is an error, not success.
        let blocked = dir.path().join("store").join("blocked");
        fs::write(&blocked, b"").unwrap();
        assert!(matches!(
            unpack(&zip, &blocked),
            Err(CodeError::Io { path, .. }) if path == blocked
        ));
    }

    #[test]
    fn remove_tree_removes_read_only_trees() {
        let zip = build(&[
            E::File("bootstrap", b"#!/bin/sh\n", 0o755),
            E::File("a/b/c", b"c", 0o644),
            E::Link("a/up", ".."),
        ]);
        let dir = temp();
        let dest = dir.path().join("code");
        unpack(&zip, &dest).unwrap();
        // Even a directory the owner cannot enter.
        fs::set_permissions(dest.join("a/b"), Permissions::from_mode(0o000)).unwrap();
        remove_tree(&dest).unwrap();
        assert!(!dest.exists());
        assert!(dir_names(dir.path()).is_empty());
        remove_tree(&dest).unwrap();
    }

    #[test]
    fn messages_are_lowercase_without_period_and_name_the_entry() {
        let errors = [
            inspect(&build(&[E::File("../evil", b"", 0o644)]), 10).unwrap_err(),
            inspect(&build(&[E::Link("lnk", "/etc")]), 10).unwrap_err(),
            inspect(&build(&[E::File("big", &[0; 20], 0o644)]), 10).unwrap_err(),
            inspect(b"nope", 10).unwrap_err(),
            CodeError::ZippedTooLarge { size: 2, limit: 1 },
            CodeError::Io {
                path: PathBuf::from("/x/bootstrap"),
                source: io::Error::from(io::ErrorKind::NotFound),
            },
        ];
        for err in &errors {
            let msg = err.to_string();
            assert!(msg.starts_with(|c: char| c.is_ascii_lowercase()), "{msg}");
            assert!(!msg.ends_with('.'), "{msg}");
        }
        assert!(errors[0].to_string().contains("\"../evil\""));
        assert!(errors[1].to_string().contains("\"lnk\""));
        assert!(errors[5].to_string().contains("/x/bootstrap"));
    }
}
