//! Project uploads as immutable, content-addressed artifacts. A student's project arrives as a
//! ZIP (from the portal, the API, or `slipway deploy`, which zips a folder with [`pack_dir`]);
//! [`unpack_zip`] extracts one safely, refusing every archive trick we know of (zip-slip,
//! absolute paths, escaping symlinks, device entries, zip bombs, lying size headers, duplicate
//! paths), and [`ArtifactStore`] keeps the ZIP itself under the SHA-256 of its bytes.
//!
//! It deliberately does not build or run anything, look inside files (no malware or secret
//! scanning), accept formats other than ZIP, garbage-collect the store, or know about apps,
//! deploys or the database: callers decide what an artifact belongs to. It is synchronous and
//! blocking; async callers wrap it in `spawn_blocking`.
//!
//! Symlink policy: relative symlinks that stay inside the project are kept, because real
//! projects carry them (`node_modules/.bin`, `current -> releases/v2`) and dropping or refusing
//! them breaks uploads that work on the student's machine. Everything that could make a link
//! reach outside is refused: absolute targets, targets whose `..` climb above the project root,
//! targets that pass *through* another symlink (with `a -> .`, the target `a/..` looks inside
//! but is the parent folder), and entries written beneath a symlink. Links are created last,
//! after every file, so extraction itself never follows one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Cursor, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, System, ZipArchive, ZipWriter};

/// Size and count limits for one upload. Every limit is checked against what the archive
/// declares before anything is written, and again against what actually comes out while
/// streaming, because a hostile archive can lie in its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The largest ZIP accepted, in bytes.
    pub max_upload_bytes: u64,
    /// The most entries (files, folders and symlinks, junk included) one archive may list.
    pub max_entries: usize,
    /// The most bytes all files together may unpack to.
    pub max_unpacked_bytes: u64,
    /// The most bytes one file may unpack to.
    pub max_entry_bytes: u64,
}

impl Default for Limits {
    /// Generous for coursework (a Node or Python project with assets is a few MiB) while keeping
    /// one upload from filling a node's disk: 100 MiB zipped, 20 000 entries, 500 MiB unpacked
    /// and 200 MiB for any single file.
    fn default() -> Self {
        Limits { max_upload_bytes: 100 * MIB, max_entries: 20_000, max_unpacked_bytes: 500 * MIB, max_entry_bytes: 200 * MIB }
    }
}

const MIB: u64 = 1024 * 1024;

/// The longest symlink target accepted, matching Linux's `PATH_MAX`.
const MAX_LINK_TARGET: u64 = 4096;
/// The longest single path component accepted, matching Linux's `NAME_MAX`.
const MAX_COMPONENT_BYTES: usize = 255;
/// The longest whole entry path accepted, matching Linux's `PATH_MAX`.
const MAX_PATH_BYTES: usize = 4096;

/// Folders `pack_dir` leaves out at any depth: version control, dependency caches and build
/// output, which the build step recreates and which would otherwise dwarf the source.
const SKIPPED_DIRS: &[&str] = &[".git", "node_modules", "__pycache__", ".venv", "target"];

/// What `unpack_zip` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnpackReport {
    /// Regular files and symlinks written (folders are not counted).
    pub n_files: usize,
    /// Bytes written to regular files.
    pub n_bytes: u64,
    /// The single top-level folder that was unwrapped, if any (`myproj` for `myproj/package.json`).
    pub stripped_prefix: Option<String>,
}

/// Everything that can go wrong. The portal's API returns [`ArtifactError::code`] next to the
/// message, so codes are stable; messages may be reworded.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("the upload is {size} bytes, over the limit of {limit} bytes")]
    UploadTooLarge { size: u64, limit: u64 },
    /// The reason is for logs; students only need to know it is not a ZIP.
    #[error("the upload is not a ZIP archive")]
    NotAZip { reason: String },
    #[error("the archive has more than {limit} entries")]
    TooManyEntries { limit: usize },
    #[error("the archive unpacks to at least {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("entry `{entry}` unpacks to at least {size} bytes, over the per-file limit of {limit} bytes")]
    EntryTooLarge { entry: String, size: u64, limit: u64 },
    #[error("entry `{entry}` holds more data than the {declared} bytes its header declares")]
    SizeMismatch { entry: String, declared: u64 },
    #[error("entry `{entry}` is damaged: {reason}")]
    CorruptEntry { entry: String, reason: String },
    #[error("entry `{entry}` is encrypted; upload an archive made without a password")]
    EncryptedEntry { entry: String },
    #[error("entry `{entry}` uses the {method} compression method; re-create the archive with deflate")]
    UnsupportedCompression { entry: String, method: String },
    #[error("entry `{entry}` has an absolute path")]
    AbsolutePath { entry: String },
    #[error("entry `{entry}` escapes the project folder")]
    ZipSlip { entry: String },
    #[error("entry `{entry}` is not allowed: {reason}")]
    BadEntryName { entry: String, reason: &'static str },
    #[error("entry `{entry}` is a {kind}; only files, folders and symlinks are allowed")]
    SpecialEntry { entry: String, kind: &'static str },
    #[error("symlink `{entry}` points to `{target}`, outside the project folder")]
    SymlinkEscape { entry: String, target: String },
    #[error("entry `{entry}` leads through symlink `{link}`")]
    ThroughSymlink { entry: String, link: String },
    #[error("entry `{entry}` appears more than once")]
    DuplicateEntry { entry: String },
    /// Raised when the archive's own directory lists one name twice; the ZIP reader merges such
    /// names, so which one is no longer known.
    #[error("the archive lists the same entry name more than once")]
    DuplicateNames,
    #[error("entry `{entry}` is used both as a folder and as a file or symlink")]
    PathConflict { entry: String },
    #[error("destination `{}` already exists and is not an empty folder", path.display())]
    DestinationExists { path: PathBuf },
    #[error("`{id}` is not an artifact id (64 lower-case hex characters)")]
    BadArtifactId { id: String },
    #[error("artifact `{id}` is not in the store")]
    NotFound { id: ArtifactId },
    #[error("artifact `{id}` is corrupt: its contents hash to `{actual}`")]
    ArtifactCorrupt { id: ArtifactId, actual: String },
    #[error("i/o error on `{}`: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl ArtifactError {
    /// A stable, machine-readable code for the portal's API. Several variants share a code when
    /// the student's remedy is the same (both size limits are `too_large`).
    pub fn code(&self) -> &'static str {
        match self {
            ArtifactError::UploadTooLarge { .. } => "upload_too_large",
            ArtifactError::NotAZip { .. } => "not_a_zip",
            ArtifactError::TooManyEntries { .. } => "too_many_entries",
            ArtifactError::TooLarge { .. } | ArtifactError::EntryTooLarge { .. } => "too_large",
            ArtifactError::SizeMismatch { .. } => "size_mismatch",
            ArtifactError::CorruptEntry { .. } => "corrupt_entry",
            ArtifactError::EncryptedEntry { .. } => "encrypted_entry",
            ArtifactError::UnsupportedCompression { .. } => "unsupported_compression",
            ArtifactError::AbsolutePath { .. } => "absolute_path",
            ArtifactError::ZipSlip { .. } => "zip_slip",
            ArtifactError::BadEntryName { .. } => "bad_entry_name",
            ArtifactError::SpecialEntry { .. } => "special_entry",
            ArtifactError::SymlinkEscape { .. } | ArtifactError::ThroughSymlink { .. } => "symlink_escape",
            ArtifactError::DuplicateEntry { .. } | ArtifactError::DuplicateNames | ArtifactError::PathConflict { .. } => "duplicate_entry",
            ArtifactError::DestinationExists { .. } => "destination_exists",
            ArtifactError::BadArtifactId { .. } => "bad_artifact_id",
            ArtifactError::NotFound { .. } => "artifact_not_found",
            ArtifactError::ArtifactCorrupt { .. } => "artifact_corrupt",
            ArtifactError::Io { .. } => "io",
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError::Io { path: path.to_owned(), source }
}

// ---------------------------------------------------------------------------------------------
// Unpacking
// ---------------------------------------------------------------------------------------------

/// Extracts `zip_bytes` into `dest`, which must not exist yet or be an empty folder (its parent
/// folders are created). Extraction happens in a hidden folder beside `dest` that is renamed into
/// place at the end, so a rejected or failed upload leaves nothing behind.
///
/// Junk that macOS adds (`__MACOSX/`, `.DS_Store`) is dropped, and a single top-level folder
/// holding everything is unwrapped. Files get mode 0644, or 0755 when the owner-executable bit
/// was set; setuid, setgid and sticky bits never survive.
pub fn unpack_zip(zip_bytes: &[u8], dest: &Path, limits: &Limits) -> Result<UnpackReport, ArtifactError> {
    let mut archive = open_archive(zip_bytes, limits)?;
    let plan = plan(&mut archive, limits)?;
    let scratch = Scratch::beside(dest)?;
    let (n_files, n_bytes) = extract(&mut archive, &plan, &scratch.path, limits)?;
    scratch.rename_to(dest)?;
    tracing::debug!(dest = %dest.display(), n_files, n_bytes, "unpacked upload");
    Ok(UnpackReport { n_files, n_bytes, stripped_prefix: plan.stripped_prefix })
}

/// Checks the upload's size and entry count, then parses its central directory.
fn open_archive<'a>(zip_bytes: &'a [u8], limits: &Limits) -> Result<ZipArchive<Cursor<&'a [u8]>>, ArtifactError> {
    let size = zip_bytes.len() as u64;
    if size > limits.max_upload_bytes {
        return Err(ArtifactError::UploadTooLarge { size, limit: limits.max_upload_bytes });
    }
    // Parsing the central directory costs memory per entry, so an archive that admits to too
    // many entries is refused before the parser sees it; the count is checked again afterwards
    // in case this quick look was fooled.
    if declared_entry_count(zip_bytes).is_some_and(|count| count > limits.max_entries as u64) {
        return Err(ArtifactError::TooManyEntries { limit: limits.max_entries });
    }
    let archive = ZipArchive::new(Cursor::new(zip_bytes)).map_err(|error| {
        tracing::debug!(%error, "upload refused as not a ZIP");
        ArtifactError::NotAZip { reason: error.to_string() }
    })?;
    if archive.has_duplicate_names() {
        return Err(ArtifactError::DuplicateNames);
    }
    if archive.len() > limits.max_entries {
        return Err(ArtifactError::TooManyEntries { limit: limits.max_entries });
    }
    Ok(archive)
}

/// The largest entry count any end-of-central-directory record near the end of the buffer
/// claims (following a ZIP64 locator when the 16-bit count is saturated), or `None` if there is
/// no such record. Taking the largest over every candidate means a decoy record cannot hide the
/// one the ZIP reader will use.
fn declared_entry_count(bytes: &[u8]) -> Option<u64> {
    const EOCD: &[u8] = b"PK\x05\x06";
    const EOCD_LEN: usize = 22;
    // Offsets inside a hostile file can be anything, so every read is bounds-checked.
    let field = |at: usize, len: usize| at.checked_add(len).and_then(|end| bytes.get(at..end));
    let u16_at = |at: usize| field(at, 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at = |at: usize| field(at, 8).map(|b| u64::from_le_bytes(b.try_into().expect("slice of eight bytes")));
    let last = bytes.len().checked_sub(EOCD_LEN)?;
    let first = last.saturating_sub(usize::from(u16::MAX));
    let mut largest = None;
    for at in (first..=last).rev() {
        if &bytes[at..at + 4] != EOCD {
            continue;
        }
        let mut count = u64::from(u16_at(at + 10)?);
        if count == u64::from(u16::MAX) {
            let zip64 = at
                .checked_sub(20)
                .filter(|&locator| field(locator, 4) == Some(b"PK\x06\x07".as_slice()))
                .and_then(|locator| u64_at(locator + 8))
                .and_then(|offset| usize::try_from(offset).ok())
                .filter(|&record| field(record, 4) == Some(b"PK\x06\x06".as_slice()))
                .and_then(|record| u64_at(record.checked_add(32)?));
            count = count.max(zip64.unwrap_or(0));
        }
        largest = largest.max(Some(count));
    }
    largest
}

/// What to extract, decided entirely from the central directory (plus symlink targets) before
/// anything touches the disk.
#[derive(Debug)]
struct Plan {
    entries: Vec<Planned>,
    /// Every folder the tree will contain, explicit or implied by a deeper entry.
    dirs: BTreeSet<Vec<String>>,
    stripped_prefix: Option<String>,
}

#[derive(Debug)]
struct Planned {
    index: usize,
    /// The name as the archive spells it, printable, for error messages.
    name: String,
    path: Vec<String>,
    kind: Kind,
    declared: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    File { executable: bool },
    Symlink { target: String },
}

/// What already occupies a path while checking for duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    ImpliedDir,
    Dir,
    File,
    Symlink,
}

type Slots = BTreeMap<Vec<String>, Slot>;

const S_IFMT: u32 = 0o170_000;
const S_IFIFO: u32 = 0o010_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFSOCK: u32 = 0o140_000;

fn plan(archive: &mut ZipArchive<Cursor<&[u8]>>, limits: &Limits) -> Result<Plan, ArtifactError> {
    let mut entries = Vec::new();
    let mut declared_total: u64 = 0;
    for index in 0..archive.len() {
        let entry = archive.by_index_data(index).map_err(|error| ArtifactError::NotAZip { reason: error.to_string() })?;
        let decoded = entry.name().map_err(|error| ArtifactError::NotAZip { reason: error.to_string() })?;
        let name = printable(&decoded);
        let path = entry_path(entry.name_raw(), &decoded, &name)?;
        if is_junk(&path) {
            continue;
        }
        if entry.encrypted() {
            return Err(ArtifactError::EncryptedEntry { entry: name });
        }
        // The raw mode is read here rather than through `unix_mode()`, which clears the setuid
        // bits but also invents a mode for DOS archives; only a Unix-made entry's type is trusted.
        let mode = if entry.system() == System::Unix { entry.external_attributes() >> 16 } else { 0 };
        let kind = match mode & S_IFMT {
            S_IFLNK => Kind::Symlink { target: String::new() },
            S_IFIFO => return Err(ArtifactError::SpecialEntry { entry: name, kind: "fifo" }),
            S_IFCHR => return Err(ArtifactError::SpecialEntry { entry: name, kind: "character device" }),
            S_IFBLK => return Err(ArtifactError::SpecialEntry { entry: name, kind: "block device" }),
            S_IFSOCK => return Err(ArtifactError::SpecialEntry { entry: name, kind: "socket" }),
            S_IFDIR => Kind::Dir,
            _ if decoded.ends_with('/') || decoded.ends_with('\\') => Kind::Dir,
            0 | S_IFREG => Kind::File { executable: mode & 0o100 != 0 },
            _ => return Err(ArtifactError::SpecialEntry { entry: name, kind: "file of unknown type" }),
        };
        if path.is_empty() {
            // `./` and friends name the root itself, which always exists.
            if kind == Kind::Dir {
                continue;
            }
            return Err(ArtifactError::BadEntryName { entry: name, reason: "its name has no file name in it" });
        }
        let declared = entry.size();
        match kind {
            Kind::Dir => {}
            Kind::Symlink { .. } if declared > MAX_LINK_TARGET => {
                return Err(ArtifactError::BadEntryName { entry: name, reason: "its symlink target is longer than 4096 bytes" });
            }
            Kind::File { .. } | Kind::Symlink { .. } => {
                let method = entry.compression();
                if !matches!(method, CompressionMethod::Stored | CompressionMethod::Deflated) {
                    return Err(ArtifactError::UnsupportedCompression { entry: name, method: method.to_string() });
                }
            }
        }
        if matches!(kind, Kind::File { .. }) {
            if declared > limits.max_entry_bytes {
                return Err(ArtifactError::EntryTooLarge { entry: name, size: declared, limit: limits.max_entry_bytes });
            }
            declared_total = declared_total.saturating_add(declared);
            if declared_total > limits.max_unpacked_bytes {
                return Err(ArtifactError::TooLarge { size: declared_total, limit: limits.max_unpacked_bytes });
            }
        }
        entries.push(Planned { index, name, path, kind, declared });
    }

    let stripped_prefix = strip_single_top_folder(&mut entries);
    let (slots, dirs) = check_paths(&entries)?;

    for planned in &mut entries {
        if let Kind::Symlink { target } = &mut planned.kind {
            *target = read_link_target(archive, planned.index, &planned.name, planned.declared)?;
            check_link_target(&planned.path, target, &planned.name, |path| slots.get(path) == Some(&Slot::Symlink))?;
        }
    }
    Ok(Plan { entries, dirs, stripped_prefix })
}

/// Validates an entry's name and splits it into path components, treating `\` as a separator
/// too, because archives made on Windows use it and `..\evil` must not slip through as a file
/// name with backslashes in it.
fn entry_path(raw: &[u8], decoded: &str, name: &str) -> Result<Vec<String>, ArtifactError> {
    // The raw bytes are checked as well as the decoded name: names that are not UTF-8 are decoded
    // as CP437, which turns control bytes into harmless-looking symbols.
    if raw.iter().any(|&b| b < 0x20 || b == 0x7f) || decoded.chars().any(char::is_control) {
        return Err(ArtifactError::BadEntryName { entry: name.to_owned(), reason: "its name contains a control character" });
    }
    if decoded.is_empty() {
        return Err(ArtifactError::BadEntryName { entry: name.to_owned(), reason: "its name is empty" });
    }
    let normalized = decoded.replace('\\', "/");
    if normalized.starts_with('/') || has_drive_letter(&normalized) {
        return Err(ArtifactError::AbsolutePath { entry: name.to_owned() });
    }
    if normalized.len() > MAX_PATH_BYTES {
        return Err(ArtifactError::BadEntryName { entry: name.to_owned(), reason: "its path is longer than 4096 bytes" });
    }
    let mut path = Vec::new();
    for component in normalized.split('/') {
        match component {
            "" | "." => {}
            // Any `..` is refused, even one that would stay inside (`a/../b`): no honest tool
            // writes them, and refusing them all leaves nothing to get wrong.
            ".." => return Err(ArtifactError::ZipSlip { entry: name.to_owned() }),
            _ if component.len() > MAX_COMPONENT_BYTES => {
                return Err(ArtifactError::BadEntryName { entry: name.to_owned(), reason: "a part of its path is longer than 255 bytes" });
            }
            _ => path.push(component.to_owned()),
        }
    }
    Ok(path)
}

/// `C:`, `c:/x` and `C:\x` (already turned into `C:/x`) are Windows drive paths.
fn has_drive_letter(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

/// Finder's resource forks and folder settings: never part of a project.
fn is_junk(path: &[String]) -> bool {
    path.iter().any(|part| part == "__MACOSX") || path.last().is_some_and(|last| last == ".DS_Store")
}

/// Names with control characters escaped, so messages and logs stay on one readable line.
fn printable(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Unwraps `myproj/…` when every entry lives under the one folder `myproj`, which is what
/// "Compress folder" produces on every desktop. Returns the folder's name.
fn strip_single_top_folder(entries: &mut Vec<Planned>) -> Option<String> {
    let top = entries.first()?.path[0].clone();
    let all_under_top = entries.iter().all(|e| e.path[0] == top && (e.path.len() > 1 || e.kind == Kind::Dir));
    if !all_under_top || !entries.iter().any(|e| e.path.len() > 1) {
        return None;
    }
    entries.retain(|e| e.path.len() > 1);
    for entry in entries.iter_mut() {
        entry.path.remove(0);
    }
    Some(top)
}

/// Refuses duplicate paths, a path used as both a folder and a file, and entries beneath a
/// symlink. Returns what occupies each path and the set of folders to create.
fn check_paths(entries: &[Planned]) -> Result<(Slots, BTreeSet<Vec<String>>), ArtifactError> {
    let mut slots = Slots::new();
    for entry in entries {
        for depth in 1..entry.path.len() {
            let ancestor = &entry.path[..depth];
            match slots.get(ancestor) {
                None => {
                    slots.insert(ancestor.to_vec(), Slot::ImpliedDir);
                }
                Some(Slot::ImpliedDir | Slot::Dir) => {}
                Some(Slot::File) => return Err(ArtifactError::PathConflict { entry: ancestor.join("/") }),
                Some(Slot::Symlink) => {
                    return Err(ArtifactError::ThroughSymlink { entry: entry.name.clone(), link: ancestor.join("/") });
                }
            }
        }
        let slot = match entry.kind {
            Kind::Dir => Slot::Dir,
            Kind::File { .. } => Slot::File,
            Kind::Symlink { .. } => Slot::Symlink,
        };
        match (slots.get(&entry.path).copied(), slot) {
            (None, _) | (Some(Slot::ImpliedDir), Slot::Dir) => {
                slots.insert(entry.path.clone(), slot);
            }
            (Some(Slot::ImpliedDir), _) | (Some(Slot::Dir), Slot::File | Slot::Symlink) => {
                return Err(ArtifactError::PathConflict { entry: entry.name.clone() });
            }
            (Some(Slot::File | Slot::Symlink), Slot::Dir) => {
                return Err(ArtifactError::PathConflict { entry: entry.name.clone() });
            }
            (Some(_), _) => return Err(ArtifactError::DuplicateEntry { entry: entry.name.clone() }),
        }
    }
    let dirs = slots.iter().filter(|(_, slot)| matches!(slot, Slot::Dir | Slot::ImpliedDir)).map(|(path, _)| path.clone()).collect();
    Ok((slots, dirs))
}

fn read_link_target(archive: &mut ZipArchive<Cursor<&[u8]>>, index: usize, name: &str, declared: u64) -> Result<String, ArtifactError> {
    let mut reader =
        archive.by_index(index).map_err(|error| ArtifactError::CorruptEntry { entry: name.to_owned(), reason: error.to_string() })?;
    let mut target = Vec::new();
    // Reading one byte past the limit tells a long target from one of exactly the limit.
    reader.by_ref().take(MAX_LINK_TARGET + 1).read_to_end(&mut target).map_err(|error| read_error(name, declared, &error))?;
    if target.len() as u64 > MAX_LINK_TARGET {
        return Err(ArtifactError::BadEntryName { entry: name.to_owned(), reason: "its symlink target is longer than 4096 bytes" });
    }
    let target = String::from_utf8(target)
        .map_err(|_| ArtifactError::BadEntryName { entry: name.to_owned(), reason: "its symlink target is not valid UTF-8" })?;
    Ok(target)
}

/// Checks that a symlink at `link` (a path inside the project) pointing at `target` resolves
/// inside the project. Backslashes count as separators, as in entry names. `is_symlink` says
/// whether a path inside the project is itself a symlink: stepping through one is refused,
/// because only then does this purely lexical walk match what the kernel will do.
fn check_link_target(link: &[String], target: &str, name: &str, is_symlink: impl Fn(&[String]) -> bool) -> Result<(), ArtifactError> {
    let escape = || ArtifactError::SymlinkEscape { entry: name.to_owned(), target: printable(target) };
    if target.is_empty() {
        return Err(ArtifactError::BadEntryName { entry: name.to_owned(), reason: "its symlink target is empty" });
    }
    if target.chars().any(char::is_control) {
        return Err(ArtifactError::BadEntryName { entry: name.to_owned(), reason: "its symlink target contains a control character" });
    }
    let normalized = target.replace('\\', "/");
    if normalized.starts_with('/') || has_drive_letter(&normalized) {
        return Err(escape());
    }
    let mut at: Vec<String> = link[..link.len().saturating_sub(1)].to_vec();
    let parts: Vec<&str> = normalized.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    for (i, part) in parts.iter().enumerate() {
        if *part == ".." {
            at.pop().ok_or_else(escape)?;
            continue;
        }
        at.push((*part).to_owned());
        if i + 1 < parts.len() && is_symlink(&at) {
            return Err(ArtifactError::ThroughSymlink { entry: name.to_owned(), link: at.join("/") });
        }
    }
    Ok(())
}

/// Writes the plan into `root` (an empty folder): folders first, then files, then symlinks, so
/// nothing is ever written through a link. Returns the files written and their bytes.
fn extract(archive: &mut ZipArchive<Cursor<&[u8]>>, plan: &Plan, root: &Path, limits: &Limits) -> Result<(usize, u64), ArtifactError> {
    for dir in &plan.dirs {
        let path = join(root, dir);
        fs::create_dir(&path).map_err(io_error(&path))?;
    }
    let mut n_files = 0;
    let mut n_bytes: u64 = 0;
    for planned in &plan.entries {
        let Kind::File { executable } = planned.kind else { continue };
        let path = join(root, &planned.path);
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(io_error(&path))?;
        let mut reader = archive
            .by_index(planned.index)
            .map_err(|error| ArtifactError::CorruptEntry { entry: planned.name.clone(), reason: error.to_string() })?;
        // The headers already passed the limits, but they may lie, so the bytes that actually
        // come out are capped too: per file, and by what is left of the total.
        let remaining = limits.max_unpacked_bytes.saturating_sub(n_bytes);
        let cap = limits.max_entry_bytes.min(remaining);
        let written = match copy_capped(&mut reader, &mut file, cap) {
            Ok(written) => written,
            Err(CopyError::Read(error)) => return Err(read_error(&planned.name, planned.declared, &error)),
            Err(CopyError::Write(error)) => return Err(ArtifactError::Io { path, source: error }),
            Err(CopyError::OverCap { read }) if limits.max_entry_bytes <= remaining => {
                return Err(ArtifactError::EntryTooLarge { entry: planned.name.clone(), size: read, limit: limits.max_entry_bytes });
            }
            Err(CopyError::OverCap { read }) => {
                return Err(ArtifactError::TooLarge { size: n_bytes.saturating_add(read), limit: limits.max_unpacked_bytes });
            }
        };
        let mode = if executable { 0o755 } else { 0o644 };
        file.set_permissions(Permissions::from_mode(mode)).map_err(io_error(&path))?;
        n_files += 1;
        n_bytes += written;
    }
    for planned in &plan.entries {
        let Kind::Symlink { target } = &planned.kind else { continue };
        let path = join(root, &planned.path);
        std::os::unix::fs::symlink(target.replace('\\', "/"), &path).map_err(io_error(&path))?;
        n_files += 1;
    }
    // Folders get 0755 whatever the umask or the archive said, after their contents are written.
    for dir in plan.dirs.iter().chain(std::iter::once(&Vec::new())) {
        let path = join(root, dir);
        fs::set_permissions(&path, Permissions::from_mode(0o755)).map_err(io_error(&path))?;
    }
    Ok((n_files, n_bytes))
}

fn join(root: &Path, parts: &[String]) -> PathBuf {
    let mut path = root.to_path_buf();
    path.extend(parts);
    path
}

/// Turns a read error from inside the ZIP reader into the matching rejection. The reader stops
/// an entry that unpacks to more than its header declared with an error of its own; recognising
/// it by its message is the only way the `zip` crate offers, and a test pins the wording.
fn read_error(entry: &str, declared: u64, error: &io::Error) -> ArtifactError {
    let reason = error.to_string();
    if reason.contains("declared uncompressed size") {
        ArtifactError::SizeMismatch { entry: entry.to_owned(), declared }
    } else {
        ArtifactError::CorruptEntry { entry: entry.to_owned(), reason }
    }
}

#[derive(Debug)]
enum CopyError {
    Read(io::Error),
    Write(io::Error),
    /// More than the cap was available; `read` is how many bytes came out (at most cap + 1).
    OverCap {
        read: u64,
    },
}

/// Copies at most `cap` bytes, reading one byte past it to tell "exactly the cap" from "more",
/// and never writing the excess. Keeps read and write errors apart, because one means a bad
/// archive and the other a full disk.
fn copy_capped(reader: &mut impl Read, writer: &mut impl Write, cap: u64) -> Result<u64, CopyError> {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut copied: u64 = 0;
    loop {
        let wanted = cap.saturating_add(1).saturating_sub(copied).min(buffer.len() as u64) as usize;
        let n = match reader.read(&mut buffer[..wanted]) {
            Ok(0) => return Ok(copied),
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(CopyError::Read(error)),
        };
        copied += n as u64;
        if copied > cap {
            return Err(CopyError::OverCap { read: copied });
        }
        writer.write_all(&buffer[..n]).map_err(CopyError::Write)?;
    }
}

/// A hidden folder beside the destination that is removed on drop unless renamed into place.
struct Scratch {
    path: PathBuf,
    kept: bool,
}

static SCRATCH_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name no other thread or process is using right now, for temporary files and folders.
fn unique_suffix() -> String {
    format!("{}-{}", std::process::id(), SCRATCH_COUNTER.fetch_add(1, Ordering::Relaxed))
}

impl Scratch {
    fn beside(dest: &Path) -> Result<Scratch, ArtifactError> {
        let file_name = dest.file_name().ok_or_else(|| ArtifactError::Io {
            path: dest.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "the destination has no folder name"),
        })?;
        match fs::symlink_metadata(dest) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(ArtifactError::Io { path: dest.to_owned(), source: error }),
            Ok(meta) => {
                let empty_dir = meta.is_dir() && fs::read_dir(dest).map_err(io_error(dest))?.next().is_none();
                if !empty_dir {
                    return Err(ArtifactError::DestinationExists { path: dest.to_owned() });
                }
            }
        }
        let parent = match dest.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        fs::create_dir_all(parent).map_err(io_error(parent))?;
        loop {
            let mut name = std::ffi::OsString::from(".");
            name.push(file_name);
            name.push(format!(".unpacking-{}", unique_suffix()));
            let path = parent.join(name);
            match fs::create_dir(&path) {
                Ok(()) => return Ok(Scratch { path, kept: false }),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(ArtifactError::Io { path, source: error }),
            }
        }
    }

    /// Renames the scratch folder to `dest`. On Linux this atomically replaces an empty folder,
    /// and fails if something was put into `dest` meanwhile.
    fn rename_to(mut self, dest: &Path) -> Result<(), ArtifactError> {
        fs::rename(&self.path, dest).map_err(io_error(dest))?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.kept {
            if let Err(error) = fs::remove_dir_all(&self.path) {
                tracing::warn!(path = %self.path.display(), %error, "could not remove a failed extraction");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Packing
// ---------------------------------------------------------------------------------------------

/// Zips the folder `src` for upload (`slipway deploy NAME ./folder`). Entries are sorted and
/// carry a fixed timestamp, so the same folder always gives the same bytes and hence the same
/// artifact id. Skips `.git/`, `node_modules/`, `__pycache__/`, `.venv/`, `target/` (at any
/// depth, as a `.gitignore` line would) and `.DS_Store`; keeps relative symlinks that stay
/// inside `src` and refuses others. The result is checked with the same rules as
/// [`unpack_zip`], so anything `pack_dir` returns will also unpack.
pub fn pack_dir(src: &Path, limits: &Limits) -> Result<Vec<u8>, ArtifactError> {
    let meta = fs::metadata(src).map_err(io_error(src))?;
    if !meta.is_dir() {
        return Err(ArtifactError::Io { path: src.to_owned(), source: io::Error::new(io::ErrorKind::InvalidInput, "not a folder") });
    }
    let mut packer = Packer { writer: ZipWriter::new(Cursor::new(Vec::new())), limits, n_entries: 0, n_bytes: 0 };
    packer.add_dir(src, &[])?;
    let bytes = packer.writer.finish().map_err(|error| ArtifactError::Io { path: src.to_owned(), source: zip_io(error) })?.into_inner();
    let mut archive = open_archive(&bytes, limits)?;
    plan(&mut archive, limits)?;
    Ok(bytes)
}

struct Packer<'a> {
    writer: ZipWriter<Cursor<Vec<u8>>>,
    limits: &'a Limits,
    n_entries: usize,
    n_bytes: u64,
}

impl Packer<'_> {
    fn options(mode: u32) -> SimpleFileOptions {
        SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .last_modified_time(DateTime::default())
            .unix_permissions(mode)
    }

    fn count_entry(&mut self) -> Result<(), ArtifactError> {
        self.n_entries += 1;
        if self.n_entries > self.limits.max_entries {
            return Err(ArtifactError::TooManyEntries { limit: self.limits.max_entries });
        }
        Ok(())
    }

    fn add_dir(&mut self, dir: &Path, rel: &[String]) -> Result<(), ArtifactError> {
        let mut children = Vec::new();
        for child in fs::read_dir(dir).map_err(io_error(dir))? {
            let child = child.map_err(io_error(dir))?;
            let path = child.path();
            let name = child.file_name().into_string().map_err(|raw| ArtifactError::BadEntryName {
                entry: printable(&raw.to_string_lossy()),
                reason: "its name is not valid UTF-8",
            })?;
            let file_type = child.file_type().map_err(io_error(&path))?;
            children.push((name, path, file_type));
        }
        children.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, path, file_type) in children {
            let mut child_rel = rel.to_vec();
            child_rel.push(name.clone());
            let entry = child_rel.join("/");
            // A symlink named `node_modules` stands for the folder, so it is skipped like one.
            if (file_type.is_dir() || file_type.is_symlink()) && SKIPPED_DIRS.contains(&name.as_str()) {
                continue;
            }
            if file_type.is_dir() {
                self.count_entry()?;
                self.writer
                    .add_directory(format!("{entry}/"), Self::options(0o755))
                    .map_err(|error| ArtifactError::Io { path: path.clone(), source: zip_io(error) })?;
                self.add_dir(&path, &child_rel)?;
            } else if file_type.is_file() {
                if name == ".DS_Store" {
                    continue;
                }
                self.count_entry()?;
                self.add_file(&path, &entry)?;
            } else if file_type.is_symlink() {
                self.count_entry()?;
                let target = fs::read_link(&path).map_err(io_error(&path))?;
                let target = target
                    .into_os_string()
                    .into_string()
                    .map_err(|_| ArtifactError::BadEntryName { entry: entry.clone(), reason: "its symlink target is not valid UTF-8" })?;
                check_link_target(&child_rel, &target, &entry, |_| false)?;
                self.writer
                    .add_symlink(&entry, &target, Self::options(0o777))
                    .map_err(|error| ArtifactError::Io { path, source: zip_io(error) })?;
            } else {
                return Err(ArtifactError::SpecialEntry { entry, kind: "fifo, socket or device" });
            }
        }
        Ok(())
    }

    fn add_file(&mut self, path: &Path, entry: &str) -> Result<(), ArtifactError> {
        let mut file = File::open(path).map_err(io_error(path))?;
        let meta = file.metadata().map_err(io_error(path))?;
        let limits = self.limits;
        let remaining = limits.max_unpacked_bytes.saturating_sub(self.n_bytes);
        let over = |size: u64, n_bytes: u64| {
            if limits.max_entry_bytes <= remaining {
                ArtifactError::EntryTooLarge { entry: entry.to_owned(), size, limit: limits.max_entry_bytes }
            } else {
                ArtifactError::TooLarge { size: n_bytes.saturating_add(size), limit: limits.max_unpacked_bytes }
            }
        };
        let cap = limits.max_entry_bytes.min(remaining);
        if meta.len() > cap {
            return Err(over(meta.len(), self.n_bytes));
        }
        let mode = if meta.permissions().mode() & 0o100 != 0 { 0o755 } else { 0o644 };
        let options = Self::options(mode).large_file(meta.len() >= u64::from(u32::MAX));
        self.writer.start_file(entry, options).map_err(|error| ArtifactError::Io { path: path.to_owned(), source: zip_io(error) })?;
        // The file may grow while it is read, so the cap applies to the bytes, not the metadata.
        let written = match copy_capped(&mut file, &mut self.writer, cap) {
            Ok(written) => written,
            Err(CopyError::Read(error) | CopyError::Write(error)) => {
                return Err(ArtifactError::Io { path: path.to_owned(), source: error });
            }
            Err(CopyError::OverCap { read }) => return Err(over(read, self.n_bytes)),
        };
        self.n_bytes += written;
        Ok(())
    }
}

fn zip_io(error: zip::result::ZipError) -> io::Error {
    match error {
        zip::result::ZipError::Io(error) => error,
        other => io::Error::other(other),
    }
}

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

/// The SHA-256 of an artifact's ZIP bytes as 64 lower-case hex characters. Only [`parse`]
/// (and deserialising, which uses it) builds one from text, so an id can always be joined onto
/// a path without smuggling in `/` or `..`.
///
/// [`parse`]: ArtifactId::parse
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ArtifactId(String);

impl ArtifactId {
    /// Accepts exactly 64 lower-case hex characters. Upper case is refused rather than folded,
    /// so each artifact has one spelling and one path.
    pub fn parse(text: &str) -> Result<ArtifactId, ArtifactError> {
        let valid = text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !valid {
            return Err(ArtifactError::BadArtifactId { id: printable(text) });
        }
        Ok(ArtifactId(text.to_owned()))
    }

    /// The id of these bytes.
    pub fn of(zip_bytes: &[u8]) -> ArtifactId {
        ArtifactId(hex::encode(Sha256::digest(zip_bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ArtifactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ArtifactId {
    type Err = ArtifactError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ArtifactId::parse(text)
    }
}

impl TryFrom<String> for ArtifactId {
    type Error = ArtifactError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        ArtifactId::parse(&text)
    }
}

impl From<ArtifactId> for String {
    fn from(id: ArtifactId) -> String {
        id.0
    }
}

/// ZIPs kept by content: `root/sha256/ab/abcdef….zip`. Files are written once, read-only,
/// through a temporary file and a rename, so readers never see half an artifact and storing the
/// same bytes twice is a no-op.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    root: PathBuf,
}

impl ArtifactStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Result<ArtifactStore, ArtifactError> {
        let root = root.into();
        let objects = root.join("sha256");
        fs::create_dir_all(&objects).map_err(io_error(&objects))?;
        Ok(ArtifactStore { root })
    }

    /// Stores `zip_bytes` and returns their id. Only the ZIP signature is checked here (so random
    /// bytes are not stored forever); the contents are checked by [`unpack_zip`], which callers
    /// run on an upload before or after storing it.
    pub fn put(&self, zip_bytes: &[u8]) -> Result<ArtifactId, ArtifactError> {
        if !(zip_bytes.starts_with(b"PK\x03\x04") || zip_bytes.starts_with(b"PK\x05\x06")) {
            return Err(ArtifactError::NotAZip { reason: "no ZIP signature at the start".to_owned() });
        }
        let id = ArtifactId::of(zip_bytes);
        let path = self.path(&id);
        // A file that exists with the right length was written by an earlier `put` of the same
        // bytes (renames are atomic), so there is nothing to do.
        if fs::metadata(&path).is_ok_and(|meta| meta.len() == zip_bytes.len() as u64) {
            return Ok(id);
        }
        let dir = path.parent().expect("artifact paths have a parent folder");
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let temp = dir.join(format!(".{id}.zip.tmp-{}", unique_suffix()));
        let written = (|| {
            let mut file = OpenOptions::new().write(true).create_new(true).mode(0o444).open(&temp)?;
            file.write_all(zip_bytes)?;
            file.sync_all()?;
            fs::rename(&temp, &path)?;
            File::open(dir)?.sync_all()
        })();
        if let Err(error) = written {
            let _ = fs::remove_file(&temp);
            return Err(ArtifactError::Io { path, source: error });
        }
        tracing::info!(%id, bytes = zip_bytes.len(), "stored artifact");
        Ok(id)
    }

    /// Where the artifact's ZIP lives (whether or not it has been stored).
    pub fn path(&self, id: &ArtifactId) -> PathBuf {
        self.root.join("sha256").join(&id.0[..2]).join(format!("{}.zip", id.0))
    }

    /// Reads an artifact back, checking that its bytes still hash to its id.
    pub fn get(&self, id: &ArtifactId) -> Result<Vec<u8>, ArtifactError> {
        let path = self.path(id);
        let bytes = fs::read(&path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => ArtifactError::NotFound { id: id.clone() },
            _ => ArtifactError::Io { path: path.clone(), source },
        })?;
        let actual = ArtifactId::of(&bytes);
        if &actual != id {
            return Err(ArtifactError::ArtifactCorrupt { id: id.clone(), actual: actual.0 });
        }
        Ok(bytes)
    }

    /// Unpacks a stored artifact into `dest` with [`unpack_zip`].
    pub fn unpack(&self, id: &ArtifactId, dest: &Path, limits: &Limits) -> Result<UnpackReport, ArtifactError> {
        let path = self.path(id);
        // Checked before reading, so an oversized file is never loaded into memory.
        if let Ok(meta) = fs::metadata(&path) {
            if meta.len() > limits.max_upload_bytes {
                return Err(ArtifactError::UploadTooLarge { size: meta.len(), limit: limits.max_upload_bytes });
            }
        }
        let bytes = self.get(id)?;
        unpack_zip(&bytes, dest, limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;

    /// Builds archives with the `zip` crate's writer, which in zip 9 writes hostile names such
    /// as `../../evil` and any external attributes exactly as given.
    struct Builder(ZipWriter<Cursor<Vec<u8>>>);

    impl Builder {
        fn new() -> Builder {
            Builder(ZipWriter::new(Cursor::new(Vec::new())))
        }

        fn file(self, name: &str, data: &[u8]) -> Builder {
            self.file_with(name, SimpleFileOptions::default(), data)
        }

        /// `mode` is a whole `st_mode`, file type included (`0o100755`, `0o010644` for a fifo).
        fn file_mode(self, name: &str, mode: u32, data: &[u8]) -> Builder {
            self.file_with(name, SimpleFileOptions::default().external_attributes(mode << 16), data)
        }

        fn stored(self, name: &str, data: &[u8]) -> Builder {
            self.file_with(name, SimpleFileOptions::default().compression_method(CompressionMethod::Stored), data)
        }

        fn file_with(mut self, name: &str, options: SimpleFileOptions, data: &[u8]) -> Builder {
            self.0.start_file(name, options).expect("start entry");
            self.0.write_all(data).expect("write entry");
            self
        }

        /// Streams `len` zero bytes through the compressor without holding them in memory.
        fn zeros(mut self, name: &str, len: u64) -> Builder {
            self.0.start_file(name, SimpleFileOptions::default()).expect("start entry");
            io::copy(&mut io::repeat(0).take(len), &mut self.0).expect("write zeros");
            self
        }

        fn dir(mut self, name: &str) -> Builder {
            self.0.add_directory(name, SimpleFileOptions::default()).expect("add folder");
            self
        }

        fn symlink(mut self, name: &str, target: &str) -> Builder {
            self.0.add_symlink(name, target, SimpleFileOptions::default()).expect("add symlink");
            self
        }

        fn finish(self) -> Vec<u8> {
            self.0.finish().expect("finish archive").into_inner()
        }
    }

    fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
        files.iter().fold(Builder::new(), |b, (name, data)| b.file(name, data.as_bytes())).finish()
    }

    /// Rewrites a field in every local (`PK\3\4`) and central (`PK\1\2`) header, for the archives
    /// the writer refuses to make. Test contents never contain those signatures.
    fn patch_headers(zip: &mut [u8], local_offset: usize, central_offset: usize, value: &[u8]) {
        let mut patched = 0;
        for at in 0..zip.len().saturating_sub(4) {
            let offset = match &zip[at..at + 4] {
                b"PK\x03\x04" => local_offset,
                b"PK\x01\x02" => central_offset,
                _ => continue,
            };
            zip[at + offset..at + offset + value.len()].copy_from_slice(value);
            patched += 1;
        }
        assert!(patched >= 2, "no headers found to patch");
    }

    fn set_encrypted_flag(zip: &mut [u8]) {
        patch_headers(zip, 6, 8, &1u16.to_le_bytes());
    }

    fn set_compression_method(zip: &mut [u8], method: u16) {
        patch_headers(zip, 8, 10, &method.to_le_bytes());
    }

    fn set_uncompressed_size(zip: &mut [u8], size: u32) {
        patch_headers(zip, 22, 24, &size.to_le_bytes());
    }

    fn replace_bytes(zip: &mut [u8], from: &[u8], to: &[u8]) {
        assert_eq!(from.len(), to.len());
        let mut replaced = 0;
        for at in 0..=zip.len() - from.len() {
            if &zip[at..at + from.len()] == from {
                zip[at..at + to.len()].copy_from_slice(to);
                replaced += 1;
            }
        }
        assert!(replaced > 0, "nothing to replace");
    }

    /// A parent folder holding an unrelated sibling that no extraction may touch, and the path
    /// of a destination that does not exist yet.
    struct Fixture {
        _temp: tempfile::TempDir,
        parent: PathBuf,
        dest: PathBuf,
        sibling: PathBuf,
    }

    fn fixture() -> Fixture {
        let temp = tempfile::tempdir().expect("temp dir");
        let parent = temp.path().join("builds");
        let sibling = parent.join("other-app");
        fs::create_dir_all(&sibling).expect("sibling");
        fs::write(sibling.join("keep.txt"), "keep").expect("sibling file");
        let dest = parent.join("app");
        Fixture { _temp: temp, parent, dest, sibling }
    }

    impl Fixture {
        fn assert_nothing_left_behind(&self) {
            assert!(fs::symlink_metadata(&self.dest).is_err(), "destination was created");
            let names: Vec<String> = fs::read_dir(&self.parent)
                .expect("list parent")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(names, ["other-app"], "the parent folder holds leftovers");
            assert_eq!(fs::read_to_string(self.sibling.join("keep.txt")).expect("sibling file"), "keep");
            assert_eq!(fs::read_dir(&self.sibling).expect("list sibling").count(), 1);
        }
    }

    /// Unpacks `zip`, expects a rejection with `code`, and checks nothing was left behind.
    fn check(zip: &[u8], limits: &Limits, code: &str) -> ArtifactError {
        let fx = fixture();
        let error = match unpack_zip(zip, &fx.dest, limits) {
            Ok(report) => panic!("expected `{code}`, but the archive unpacked: {report:?}"),
            Err(error) => error,
        };
        assert_eq!(error.code(), code, "wrong rejection: {error}");
        fx.assert_nothing_left_behind();
        error
    }

    fn unpack_ok(zip: &[u8]) -> (Fixture, UnpackReport) {
        let fx = fixture();
        let report = unpack_zip(zip, &fx.dest, &Limits::default()).expect("archive unpacks");
        (fx, report)
    }

    /// Every path under `root` with what it is: `file 644 <content>`, `dir 755` or `link -> target`.
    fn tree(root: &Path) -> Vec<(String, String)> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
            let mut children: Vec<_> = fs::read_dir(dir).expect("list").map(|e| e.expect("entry").path()).collect();
            children.sort();
            for path in children {
                let rel = path.strip_prefix(root).expect("under root").to_string_lossy().into_owned();
                let meta = fs::symlink_metadata(&path).expect("metadata");
                let mode = meta.permissions().mode() & 0o7777;
                if meta.file_type().is_symlink() {
                    let target = fs::read_link(&path).expect("read link");
                    out.push((rel, format!("link -> {}", target.display())));
                } else if meta.is_dir() {
                    out.push((rel, format!("dir {mode:o}")));
                    walk(root, &path, out);
                } else {
                    let content = fs::read_to_string(&path).expect("read file");
                    out.push((rel, format!("file {mode:o} {content}")));
                }
            }
        }
        let mut out = Vec::new();
        walk(root, root, &mut out);
        out
    }

    fn expected(rows: &[(&str, &str)]) -> Vec<(String, String)> {
        rows.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    #[test]
    fn rejects_zip_slip_entries() {
        for name in ["../../evil", "../evil", "a/../../evil", "a/../b", "ok/..", "..", "./../evil"] {
            check(&zip_of(&[("fine.txt", "x"), (name, "boom")]), &Limits::default(), "zip_slip");
        }
        check(&Builder::new().dir("../up").finish(), &Limits::default(), "zip_slip");
    }

    #[test]
    fn rejects_backslash_zip_slip_entries() {
        for name in ["..\\evil", "..\\..\\evil", "a\\..\\..\\evil", "a/..\\..\\evil", "a\\.."] {
            check(&zip_of(&[(name, "boom")]), &Limits::default(), "zip_slip");
        }
    }

    #[test]
    fn rejects_absolute_paths() {
        for name in ["/etc/x", "/", "C:\\x", "C:/x", "c:x", "\\\\server\\share\\x", "\\x", "//server/x"] {
            check(&zip_of(&[(name, "boom")]), &Limits::default(), "absolute_path");
        }
    }

    #[test]
    fn rejects_control_characters_in_names() {
        for name in ["a\0b", "a\nb", "evil\r", "del\x7f", "esc\x1b[31m", "c1\u{85}"] {
            check(&zip_of(&[(name, "x")]), &Limits::default(), "bad_entry_name");
        }
    }

    #[test]
    fn rejects_names_too_long_for_the_filesystem() {
        check(&zip_of(&[(&"a".repeat(256), "x")]), &Limits::default(), "bad_entry_name");
        check(&zip_of(&[(&"abcdefgh/".repeat(500), "x")]), &Limits::default(), "bad_entry_name");
    }

    #[test]
    fn rejects_symlinks_that_escape() {
        for (link, target) in [
            ("link", "/etc/passwd"),
            ("link", "../../x"),
            ("link", "../x"),
            ("link", ".."),
            ("link", "sub/../../x"),
            ("link", "C:\\x"),
            ("link", "..\\..\\x"),
            ("sub/link", "../../x"),
            ("sub/deeper/link", "../../../x"),
        ] {
            let zip = Builder::new().file("index.js", b"x").symlink(link, target).finish();
            check(&zip, &Limits::default(), "symlink_escape");
        }
    }

    #[test]
    fn rejects_entries_that_step_through_symlinks() {
        // `a -> .` stays inside, but `a/..` is then the parent folder, not the root.
        let through_link = Builder::new().symlink("a", ".").symlink("b", "a/..").finish();
        check(&through_link, &Limits::default(), "symlink_escape");
        let beneath_link = Builder::new().dir("sub/").symlink("l", "sub").file("l/x", b"x").finish();
        check(&beneath_link, &Limits::default(), "symlink_escape");
        // The other order cannot write through the link, but the path is then both a folder and a link.
        let link_after = Builder::new().file("l/x", b"x").symlink("l", "/etc").finish();
        check(&link_after, &Limits::default(), "duplicate_entry");
    }

    #[test]
    fn keeps_relative_symlinks_inside_the_tree() {
        let zip = Builder::new()
            .file_mode("src/main.sh", 0o100755, b"echo hi")
            .symlink("bin/run", "../src/main.sh")
            .symlink("root", ".")
            .symlink("dangling", "missing.txt")
            .symlink("chain", "root")
            .finish();
        let (fx, report) = unpack_ok(&zip);
        assert_eq!(report.n_files, 5);
        assert_eq!(
            tree(&fx.dest),
            expected(&[
                ("bin", "dir 755"),
                ("bin/run", "link -> ../src/main.sh"),
                ("chain", "link -> root"),
                ("dangling", "link -> missing.txt"),
                ("root", "link -> ."),
                ("src", "dir 755"),
                ("src/main.sh", "file 755 echo hi"),
            ])
        );
        assert_eq!(fs::read_to_string(fx.dest.join("bin/run")).expect("follow link"), "echo hi");
    }

    #[test]
    fn rejects_device_and_fifo_entries() {
        for mode in [0o010644, 0o020644, 0o060644, 0o140644] {
            check(&Builder::new().file_mode("dev", mode, b"").finish(), &Limits::default(), "special_entry");
        }
    }

    #[test]
    fn rejects_too_many_entries() {
        let limits = Limits { max_entries: 3, ..Limits::default() };
        check(&zip_of(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]), &limits, "too_many_entries");
        // Junk counts too: it has to be parsed before it can be dropped.
        check(&zip_of(&[("a", "1"), ("b", "2"), ("c", "3"), (".DS_Store", "")]), &limits, "too_many_entries");
        let (_fx, report) = {
            let fx = fixture();
            let report = unpack_zip(&zip_of(&[("a", "1"), ("b", "2"), ("c", "3")]), &fx.dest, &limits).expect("at the limit");
            (fx, report)
        };
        assert_eq!(report.n_files, 3);
    }

    #[test]
    fn refuses_archives_that_claim_too_many_entries_before_parsing_them() {
        let mut zip = zip_of(&[("a", "1")]);
        let eocd = zip.len() - 22;
        assert_eq!(&zip[eocd..eocd + 4], b"PK\x05\x06");
        zip[eocd + 8..eocd + 12].copy_from_slice(&[0x60, 0xea, 0x60, 0xea]);
        check(&zip, &Limits::default(), "too_many_entries");
    }

    #[test]
    fn counts_entries_from_the_end_of_central_directory_record() {
        let files: Vec<(String, &str)> = (0..5).map(|i| (format!("f{i}"), "x")).collect();
        let refs: Vec<(&str, &str)> = files.iter().map(|(n, d)| (n.as_str(), *d)).collect();
        assert_eq!(declared_entry_count(&zip_of(&refs)), Some(5));
        assert_eq!(declared_entry_count(&Builder::new().finish()), Some(0));
        assert_eq!(declared_entry_count(b"not a zip at all, just some words"), None);
        assert_eq!(declared_entry_count(b""), None);
    }

    #[test]
    fn rejects_a_zip_bomb_before_extracting_anything() {
        let bomb = Builder::new().zeros("bomb.bin", 10 * MIB).finish();
        assert!(bomb.len() < 100 * KIB as usize, "the bomb should be small: {} bytes", bomb.len());
        let total = Limits { max_unpacked_bytes: MIB, ..Limits::default() };
        let error = check(&bomb, &total, "too_large");
        assert!(matches!(error, ArtifactError::TooLarge { size, .. } if size == 10 * MIB), "{error:?}");
        let per_file = Limits { max_entry_bytes: MIB, ..Limits::default() };
        let error = check(&bomb, &per_file, "too_large");
        assert!(matches!(error, ArtifactError::EntryTooLarge { .. }), "{error:?}");
        // Many small pieces add up just the same.
        let pieces = (0..11).fold(Builder::new(), |b, i| b.zeros(&format!("piece{i}"), 100 * KIB)).finish();
        check(&pieces, &total, "too_large");
    }

    #[test]
    fn rejects_an_entry_that_lies_about_its_size() {
        let mut liar = Builder::new().file("small.txt", b"hello").zeros("liar.bin", 10 * MIB).finish();
        // Both entries now claim 1000 bytes; the second holds ten MiB.
        set_uncompressed_size(&mut liar, 1000);
        let limits = Limits { max_unpacked_bytes: MIB, ..Limits::default() };
        let error = check(&liar, &limits, "size_mismatch");
        assert_eq!(error.to_string(), "entry `liar.bin` holds more data than the 1000 bytes its header declares");
    }

    #[test]
    fn caps_streamed_bytes_whatever_the_headers_say() {
        for (available, cap, outcome) in [(4096u64, 4096u64, Some(4096u64)), (10_000, 4096, None), (0, 0, Some(0)), (1, 0, None)] {
            let mut sink = Vec::new();
            let result = copy_capped(&mut io::repeat(7).take(available), &mut sink, cap);
            match (result, outcome) {
                (Ok(copied), Some(expected)) => assert_eq!(copied, expected),
                (Err(CopyError::OverCap { read }), None) => assert_eq!(read, cap + 1),
                (other, _) => panic!("{available} bytes with cap {cap}: unexpected {other:?}"),
            }
            assert!(sink.len() as u64 <= cap, "wrote past the cap");
        }
    }

    #[test]
    fn rejects_uploads_that_are_not_zips() {
        let mut seed: u32 = 12345;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (seed >> 16) as u8
            })
            .collect();
        let zip = zip_of(&[("package.json", "{}"), ("index.js", "console.log(1)")]);
        for bytes in [&noise[..], b"", b"PK", b"hello, world", &zip[..zip.len() - 10], &zip[..zip.len() / 2]] {
            let error = check(bytes, &Limits::default(), "not_a_zip");
            assert_eq!(error.to_string(), "the upload is not a ZIP archive");
        }
    }

    #[test]
    fn rejects_uploads_over_the_size_limit() {
        let zip = zip_of(&[("a.txt", "hello")]);
        let limits = Limits { max_upload_bytes: zip.len() as u64 - 1, ..Limits::default() };
        check(&zip, &limits, "upload_too_large");
    }

    #[test]
    fn rejects_encrypted_entries() {
        let mut zip = zip_of(&[("secret.txt", "hello")]);
        set_encrypted_flag(&mut zip);
        check(&zip, &Limits::default(), "encrypted_entry");
    }

    #[test]
    fn rejects_compression_methods_other_than_deflate() {
        let mut zip = zip_of(&[("a.txt", "hello")]);
        set_compression_method(&mut zip, 12);
        let error = check(&zip, &Limits::default(), "unsupported_compression");
        assert_eq!(error.to_string(), "entry `a.txt` uses the Bzip2 compression method; re-create the archive with deflate");
    }

    #[test]
    fn rejects_damaged_entries() {
        let mut zip = Builder::new().stored("a.txt", b"hello world").finish();
        replace_bytes(&mut zip, b"hello world", b"jello world");
        check(&zip, &Limits::default(), "corrupt_entry");
    }

    #[test]
    fn rejects_duplicate_entries() {
        let mut same_raw_name = zip_of(&[("dup", "1"), ("dvp", "2")]);
        replace_bytes(&mut same_raw_name, b"dvp", b"dup");
        check(&same_raw_name, &Limits::default(), "duplicate_entry");
        for zip in [
            zip_of(&[("a/b", "1"), ("a\\b", "2")]),
            zip_of(&[("a", "1"), ("./a", "2")]),
            zip_of(&[("a", "1"), ("a/", "2")]),
            zip_of(&[("a", "1"), ("a/b", "2")]),
            zip_of(&[("a/b", "1"), ("a", "2")]),
            Builder::new().dir("x/").file("x", b"1").finish(),
            Builder::new().dir("x/").dir("x\\").finish(),
            Builder::new().symlink("l", "a").file("./l", b"1").finish(),
        ] {
            check(&zip, &Limits::default(), "duplicate_entry");
        }
    }

    #[test]
    fn treats_names_that_differ_only_in_case_as_different() {
        let (fx, report) = unpack_ok(&zip_of(&[("README", "1"), ("Readme", "2")]));
        assert_eq!(report.n_files, 2);
        assert_eq!(tree(&fx.dest), expected(&[("README", "file 644 1"), ("Readme", "file 644 2")]));
    }

    #[test]
    fn drops_macos_junk_and_unwraps_the_top_folder() {
        let zip = Builder::new()
            .dir("myproj/")
            .file("myproj/package.json", b"{}")
            .file("myproj/.DS_Store", b"junk")
            .dir("__MACOSX/")
            .dir("__MACOSX/myproj/")
            .file("__MACOSX/myproj/._package.json", b"junk")
            .file("myproj/src/.DS_Store", b"junk")
            .file("myproj/src/index.js", b"run()")
            .finish();
        let (fx, report) = unpack_ok(&zip);
        assert_eq!(report, UnpackReport { n_files: 2, n_bytes: 7, stripped_prefix: Some("myproj".to_owned()) });
        assert_eq!(tree(&fx.dest), expected(&[("package.json", "file 644 {}"), ("src", "dir 755"), ("src/index.js", "file 644 run()")]));
    }

    #[test]
    fn unwraps_a_single_top_level_folder() {
        for zip in [
            zip_of(&[("myproj/package.json", "{}")]),
            Builder::new().dir("myproj").file("myproj/package.json", b"{}").finish(),
            zip_of(&[("myproj\\package.json", "{}")]),
        ] {
            let (fx, report) = unpack_ok(&zip);
            assert_eq!(report.stripped_prefix.as_deref(), Some("myproj"));
            assert_eq!(tree(&fx.dest), expected(&[("package.json", "file 644 {}")]));
        }
    }

    #[test]
    fn keeps_nested_folders_when_there_are_two_top_level_entries() {
        let (fx, report) = unpack_ok(&zip_of(&[("a/x", "1"), ("b/y", "2")]));
        assert_eq!(report.stripped_prefix, None);
        assert_eq!(tree(&fx.dest), expected(&[("a", "dir 755"), ("a/x", "file 644 1"), ("b", "dir 755"), ("b/y", "file 644 2")]));
        let (fx, report) = unpack_ok(&zip_of(&[("myproj/x", "1"), ("README", "2")]));
        assert_eq!(report.stripped_prefix, None);
        assert_eq!(tree(&fx.dest), expected(&[("README", "file 644 2"), ("myproj", "dir 755"), ("myproj/x", "file 644 1")]));
        let (fx, report) = unpack_ok(&zip_of(&[("package.json", "{}")]));
        assert_eq!(report.stripped_prefix, None);
        assert_eq!(tree(&fx.dest), expected(&[("package.json", "file 644 {}")]));
    }

    #[test]
    fn keeps_the_executable_bit_and_drops_setuid() {
        let zip = Builder::new()
            .file_mode("setuid", 0o104755, b"1")
            .file_mode("setgid", 0o102710, b"2")
            .file_mode("sticky", 0o101777, b"3")
            .file_mode("private", 0o100600, b"4")
            .file_mode("world-writable", 0o100666, b"5")
            .file_mode("group-exec-only", 0o100654, b"6")
            .file_mode("no-type-bits", 0o000755, b"7")
            .file_with("no-mode", SimpleFileOptions::default().external_attributes(0), b"8")
            .finish();
        let (fx, _) = unpack_ok(&zip);
        assert_eq!(
            tree(&fx.dest),
            expected(&[
                ("group-exec-only", "file 644 6"),
                ("no-mode", "file 644 8"),
                ("no-type-bits", "file 755 7"),
                ("private", "file 644 4"),
                ("setgid", "file 755 2"),
                ("setuid", "file 755 1"),
                ("sticky", "file 755 3"),
                ("world-writable", "file 644 5"),
            ])
        );
        let meta = fs::metadata(&fx.dest).expect("destination");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    }

    #[test]
    fn unpacks_into_an_existing_empty_destination() {
        let fx = fixture();
        fs::create_dir(&fx.dest).expect("empty destination");
        let report = unpack_zip(&zip_of(&[("a.txt", "hello")]), &fx.dest, &Limits::default()).expect("unpacks");
        assert_eq!(report, UnpackReport { n_files: 1, n_bytes: 5, stripped_prefix: None });
        assert_eq!(tree(&fx.dest), expected(&[("a.txt", "file 644 hello")]));
    }

    #[test]
    fn refuses_a_destination_that_is_not_empty() {
        let fx = fixture();
        fs::create_dir(&fx.dest).expect("destination");
        fs::write(fx.dest.join("old.txt"), "old").expect("old file");
        let error = unpack_zip(&zip_of(&[("a.txt", "hello")]), &fx.dest, &Limits::default()).expect_err("refused");
        assert_eq!(error.code(), "destination_exists");
        assert_eq!(tree(&fx.dest), expected(&[("old.txt", "file 644 old")]));
    }

    #[test]
    fn messages_name_the_entry_and_the_bad_value() {
        let cases: [(Vec<u8>, &str); 4] = [
            (zip_of(&[("../../etc/passwd", "x")]), "entry `../../etc/passwd` escapes the project folder"),
            (Builder::new().symlink("link", "/etc/passwd").finish(), "symlink `link` points to `/etc/passwd`, outside the project folder"),
            (zip_of(&[("a\0b", "x")]), "entry `a\\u{0}b` is not allowed: its name contains a control character"),
            (zip_of(&[("C:\\x", "x")]), "entry `C:\\x` has an absolute path"),
        ];
        for (zip, message) in cases {
            let fx = fixture();
            let error = unpack_zip(&zip, &fx.dest, &Limits::default()).expect_err("refused");
            assert_eq!(error.to_string(), message);
        }
    }

    // --- The store ---

    fn store() -> (tempfile::TempDir, ArtifactStore) {
        let temp = tempfile::tempdir().expect("temp dir");
        let store = ArtifactStore::new(temp.path().join("artifacts")).expect("store");
        (temp, store)
    }

    #[test]
    fn put_is_idempotent_and_content_addressed() {
        let (temp, store) = store();
        let zip = zip_of(&[("a.txt", "hello")]);
        let id = store.put(&zip).expect("put");
        let hex = hex::encode(Sha256::digest(&zip));
        assert_eq!(id.as_str(), hex);
        let path = temp.path().join("artifacts/sha256").join(&hex[..2]).join(format!("{hex}.zip"));
        assert_eq!(store.path(&id), path);
        assert_eq!(fs::read(&path).expect("stored file"), zip);
        assert_eq!(fs::metadata(&path).expect("stored file").permissions().mode() & 0o777, 0o444);
        assert_eq!(store.put(&zip).expect("put again"), id);
        assert_eq!(store.get(&id).expect("get"), zip);
        let other = store.put(&zip_of(&[("a.txt", "world")])).expect("put other");
        assert_ne!(other, id);
        let files: Vec<_> = fs::read_dir(path.parent().expect("parent")).expect("list").collect();
        assert!(files.len() <= 2, "temporary files were left behind");
    }

    #[test]
    fn get_notices_missing_and_tampered_artifacts() {
        let (_temp, store) = store();
        let missing = ArtifactId::of(b"never stored");
        assert_eq!(store.get(&missing).expect_err("missing").code(), "artifact_not_found");
        let id = store.put(&zip_of(&[("a.txt", "hello")])).expect("put");
        let path = store.path(&id);
        fs::set_permissions(&path, Permissions::from_mode(0o644)).expect("make writable");
        fs::write(&path, zip_of(&[("a.txt", "HELLO")])).expect("tamper");
        assert_eq!(store.get(&id).expect_err("tampered").code(), "artifact_corrupt");
    }

    #[test]
    fn put_refuses_bytes_that_are_not_a_zip() {
        let (_temp, store) = store();
        for bytes in [&b""[..], b"hello", b"\x7fELF...."] {
            assert_eq!(store.put(bytes).expect_err("not a zip").code(), "not_a_zip");
        }
        assert!(store.put(&Builder::new().finish()).is_ok(), "an empty archive is still a ZIP");
    }

    #[test]
    fn store_unpacks_what_it_stored() {
        let (_temp, store) = store();
        let id = store.put(&zip_of(&[("proj/index.js", "run()")])).expect("put");
        let fx = fixture();
        let report = store.unpack(&id, &fx.dest, &Limits::default()).expect("unpack");
        assert_eq!(report.stripped_prefix.as_deref(), Some("proj"));
        assert_eq!(tree(&fx.dest), expected(&[("index.js", "file 644 run()")]));
        let small = Limits { max_upload_bytes: 10, ..Limits::default() };
        let fx = fixture();
        assert_eq!(store.unpack(&id, &fx.dest, &small).expect_err("too big").code(), "upload_too_large");
        fx.assert_nothing_left_behind();
    }

    fn check_id(text: &str, valid: bool) {
        use serde::Deserialize as _;
        assert_eq!(ArtifactId::parse(text).is_ok(), valid, "id {text:?}");
        let deserialized = ArtifactId::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(text));
        assert_eq!(deserialized.is_ok(), valid, "deserializing {text:?}");
    }

    #[test]
    fn artifact_ids_are_exactly_64_lower_case_hex_characters() {
        let good = "0123456789abcdef".repeat(4);
        check_id(&good, true);
        check_id(&ArtifactId::of(b"x").to_string(), true);
        for bad in [
            String::new(),
            "../x".to_owned(),
            "abc".to_owned(),
            good.to_uppercase(),
            format!("{}0", good),
            good[..63].to_owned(),
            format!("../{}", &good[3..]),
            format!("{}/", &good[..63]),
            format!("{}g", &good[..63]),
            format!("{}\0", &good[..63]),
        ] {
            check_id(&bad, false);
        }
        let id = ArtifactId::parse(&good).expect("valid id");
        assert_eq!(id.to_string(), good);
        assert_eq!(String::from(id.clone()), good);
        assert_eq!(good.parse::<ArtifactId>().expect("from_str"), id);
    }

    // --- Packing ---

    fn write_file(path: &Path, content: &str, mode: u32) {
        fs::create_dir_all(path.parent().expect("parent")).expect("folders");
        fs::write(path, content).expect("write");
        fs::set_permissions(path, Permissions::from_mode(mode)).expect("chmod");
    }

    /// A project folder with things to keep and things `pack_dir` must skip.
    fn project() -> tempfile::TempDir {
        let temp = tempfile::tempdir().expect("temp dir");
        let root = temp.path();
        write_file(&root.join("package.json"), "{}", 0o644);
        write_file(&root.join("run.sh"), "#!/bin/sh", 0o750);
        write_file(&root.join("src/app.js"), "app()", 0o600);
        write_file(&root.join("src/lib/util.js"), "util()", 0o644);
        write_file(&root.join(".git/config"), "[core]", 0o644);
        write_file(&root.join("node_modules/left-pad/index.js"), "pad()", 0o644);
        write_file(&root.join("src/__pycache__/x.pyc"), "bytecode", 0o644);
        write_file(&root.join(".venv/bin/python"), "py", 0o755);
        write_file(&root.join("target/debug/app"), "elf", 0o755);
        write_file(&root.join(".DS_Store"), "junk", 0o644);
        write_file(&root.join("src/.DS_Store"), "junk", 0o644);
        fs::create_dir(root.join("empty")).expect("empty folder");
        std::os::unix::fs::symlink("src/app.js", root.join("main.js")).expect("symlink");
        temp
    }

    #[test]
    fn pack_dir_round_trips_through_unpack_zip() {
        let src = project();
        let zip = pack_dir(src.path(), &Limits::default()).expect("pack");
        let (fx, report) = unpack_ok(&zip);
        assert_eq!(report.stripped_prefix, None);
        assert_eq!(
            tree(&fx.dest),
            expected(&[
                ("empty", "dir 755"),
                ("main.js", "link -> src/app.js"),
                ("package.json", "file 644 {}"),
                ("run.sh", "file 755 #!/bin/sh"),
                ("src", "dir 755"),
                ("src/app.js", "file 644 app()"),
                ("src/lib", "dir 755"),
                ("src/lib/util.js", "file 644 util()"),
            ])
        );
        let mut archive = ZipArchive::new(Cursor::new(&zip[..])).expect("archive");
        let names: Vec<String> = archive.file_names().map(|n| n.expect("name").into_owned()).collect();
        assert_eq!(names, ["empty/", "main.js", "package.json", "run.sh", "src/", "src/app.js", "src/lib/", "src/lib/util.js"]);
        assert_eq!(archive.by_name("run.sh").expect("entry").compression(), CompressionMethod::Deflated);
    }

    #[test]
    fn pack_dir_is_deterministic() {
        let src = project();
        let first = pack_dir(src.path(), &Limits::default()).expect("pack");
        // Touching a file changes its timestamp but not what is packed.
        fs::write(src.path().join("package.json"), "{}").expect("rewrite");
        let second = pack_dir(src.path(), &Limits::default()).expect("pack again");
        assert_eq!(ArtifactId::of(&first), ArtifactId::of(&second));
    }

    #[test]
    fn pack_dir_refuses_symlinks_that_leave_the_folder() {
        for (link, target) in [("escape", "/etc/passwd"), ("escape", "../outside"), ("sub/escape", "../../outside")] {
            let src = project();
            let path = src.path().join(link);
            fs::create_dir_all(path.parent().expect("parent")).expect("folders");
            std::os::unix::fs::symlink(target, &path).expect("symlink");
            let error = pack_dir(src.path(), &Limits::default()).expect_err("refused");
            assert_eq!(error.code(), "symlink_escape", "{link} -> {target}: {error}");
        }
        // The same rule as unpacking: no stepping through another link.
        let src = project();
        std::os::unix::fs::symlink(".", src.path().join("here")).expect("symlink");
        std::os::unix::fs::symlink("here/..", src.path().join("up")).expect("symlink");
        assert_eq!(pack_dir(src.path(), &Limits::default()).expect_err("refused").code(), "symlink_escape");
    }

    #[test]
    fn pack_dir_honours_the_limits() {
        let src = project();
        let cases = [
            (Limits { max_entries: 5, ..Limits::default() }, "too_many_entries"),
            (Limits { max_entry_bytes: 5, ..Limits::default() }, "too_large"),
            (Limits { max_unpacked_bytes: 20, ..Limits::default() }, "too_large"),
            (Limits { max_upload_bytes: 100, ..Limits::default() }, "upload_too_large"),
        ];
        for (limits, code) in cases {
            let error = pack_dir(src.path(), &limits).expect_err("refused");
            assert_eq!(error.code(), code, "{limits:?}: {error}");
        }
        assert_eq!(pack_dir(&src.path().join("missing"), &Limits::default()).expect_err("missing").code(), "io");
    }

    #[test]
    fn error_codes_are_stable() {
        let entry = || "x".to_owned();
        let cases = [
            (ArtifactError::NotAZip { reason: entry() }, "not_a_zip"),
            (ArtifactError::ZipSlip { entry: entry() }, "zip_slip"),
            (ArtifactError::AbsolutePath { entry: entry() }, "absolute_path"),
            (ArtifactError::SymlinkEscape { entry: entry(), target: entry() }, "symlink_escape"),
            (ArtifactError::TooManyEntries { limit: 1 }, "too_many_entries"),
            (ArtifactError::TooLarge { size: 2, limit: 1 }, "too_large"),
            (ArtifactError::UploadTooLarge { size: 2, limit: 1 }, "upload_too_large"),
            (ArtifactError::EncryptedEntry { entry: entry() }, "encrypted_entry"),
            (ArtifactError::DuplicateEntry { entry: entry() }, "duplicate_entry"),
            (ArtifactError::BadEntryName { entry: entry(), reason: "r" }, "bad_entry_name"),
            (ArtifactError::Io { path: PathBuf::from("p"), source: io::Error::other("e") }, "io"),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error}");
        }
    }
}
