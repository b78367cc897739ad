//! Property test: archives built at random from adversarial pieces (link chains through
//! earlier links, hard links to links, `..` in PAX paths, long names, sparse entries,
//! duplicate names, folders replaced by links), in tar, tar.gz and tar.zst. After every
//! unpack, whatever its verdict: no panic, nothing outside the root created or changed (a
//! sentinel tree beside it), and every link left in the root resolves inside it or nowhere.
//!
//! Cases: `PROPTEST_CASES` (scripts/test.sh bounds it; the default here is 256).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use drillbook_adapters::unpack::{Limits, unpack};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Piece {
    File(String, Vec<u8>),
    Dir(String),
    Symlink(String, String),
    HardLink(String, String),
    /// A PAX `path=` record overriding the next entry's name.
    PaxFile(String),
    /// A GNU sparse file declaring this many bytes.
    Sparse(String, u64),
    /// A name longer than the 100 bytes of a ustar header.
    LongName(String),
}

fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "x", "secret"]).prop_map(String::from),
        2 => Just("..".to_string()),
        1 => Just(".".to_string()),
        1 => Just("etc".to_string()),
    ]
}

fn rel_path() -> impl Strategy<Value = String> {
    prop::collection::vec(component(), 1..5).prop_map(|c| c.join("/"))
}

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => rel_path(),
        1 => rel_path().prop_map(|p| format!("/{p}")),
        1 => Just("/etc/hostname".to_string()),
        1 => Just("../sentinel/canary".to_string()),
    ]
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        3 => (rel_path(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(p, d)| Piece::File(p, d)),
        1 => rel_path().prop_map(Piece::Dir),
        4 => (rel_path(), target()).prop_map(|(p, t)| Piece::Symlink(p, t)),
        2 => (rel_path(), target()).prop_map(|(p, t)| Piece::HardLink(p, t)),
        1 => rel_path().prop_map(Piece::PaxFile),
        1 => (rel_path(), prop_oneof![Just(4096u64), Just(1u64 << 20), Just(100u64 << 30)])
            .prop_map(|(p, n)| Piece::Sparse(p, n)),
        1 => rel_path().prop_map(|p| Piece::LongName(format!("{}/{p}", "long".repeat(30)))),
    ]
}

fn raw_name(h: &mut tar::Header, path: &str) {
    let name = &mut h.as_old_mut().name;
    name.fill(0);
    let n = path.len().min(100);
    name[..n].copy_from_slice(&path.as_bytes()[..n]);
}

fn header(kind: tar::EntryType, path: &str, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    raw_name(&mut h, path);
    h
}

fn build(pieces: &[Piece]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for p in pieces {
        match p {
            Piece::File(path, data) => {
                let mut h = header(tar::EntryType::Regular, path, data.len() as u64, 0o4755);
                h.set_cksum();
                b.append(&h, data.as_slice()).unwrap();
            }
            Piece::Dir(path) => {
                let mut h = header(tar::EntryType::Directory, path, 0, 0o1777);
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            }
            Piece::Symlink(path, to) | Piece::HardLink(path, to) => {
                let kind = if matches!(p, Piece::Symlink(..)) { tar::EntryType::Symlink } else { tar::EntryType::Link };
                let mut h = header(kind, path, 0, 0o777);
                // Raw link names, `..` and all (set_link_name refuses some).
                let link = &mut h.as_old_mut().linkname;
                link.fill(0);
                let n = to.len().min(100);
                link[..n].copy_from_slice(&to.as_bytes()[..n]);
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            }
            Piece::PaxFile(path) => {
                let record = format!("path={path}\n");
                let len = record.len() + 3;
                let len = len + (len + 1).to_string().len() - 1;
                let body = format!("{len} {record}");
                let body = if body.len() == len { body } else { format!("{} {record}", body.len()) };
                let mut h = header(tar::EntryType::XHeader, "PaxHeader", body.len() as u64, 0o644);
                h.set_cksum();
                b.append(&h, body.as_bytes()).unwrap();
                let mut f = header(tar::EntryType::Regular, "innocent.txt", 3, 0o644);
                f.set_cksum();
                b.append(&f, &b"pax"[..]).unwrap();
            }
            Piece::Sparse(path, real) => {
                let mut h = header(tar::EntryType::GNUSparse, path, 512, 0o644);
                let gnu = h.as_gnu_mut().unwrap();
                gnu.sparse[0].set_offset(real - 512);
                gnu.sparse[0].set_length(512);
                gnu.set_real_size(*real);
                h.set_cksum();
                b.append(&h, &[7u8; 512][..]).unwrap();
            }
            Piece::LongName(path) => {
                // The builder writes a GNU long-name entry for it.
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(4);
                h.set_mode(0o644);
                let _ = b.append_data(&mut h, path, &b"long"[..]);
            }
        }
    }
    b.into_inner().unwrap()
}

/// Every file, folder and link below `dir` (not following links) with its content or target.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            use std::os::unix::fs::PermissionsExt;
            let what = if m.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                todo.push(p.clone());
                format!("dir {:o}", m.permissions().mode())
            } else {
                format!("file {:o} {:?}", m.permissions().mode(), std::fs::read(&p).unwrap())
            };
            out.insert(p, what);
        }
    }
    out
}

fn compress(kind: u8, tar: Vec<u8>) -> Vec<u8> {
    match kind {
        0 => tar,
        1 => {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&tar).unwrap();
            e.finish().unwrap()
        }
        _ => zstd::encode_all(tar.as_slice(), 1).unwrap(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_archive_reaches_outside_its_root(pieces in prop::collection::vec(piece(), 1..12), kind in 0u8..3) {
        let top = tempfile::tempdir().unwrap();
        let sentinel = top.path().join("sentinel");
        std::fs::create_dir(&sentinel).unwrap();
        std::fs::write(sentinel.join("canary"), b"untouched").unwrap();
        std::fs::create_dir(sentinel.join("etc")).unwrap();
        std::fs::write(sentinel.join("etc/hostname"), b"host").unwrap();
        let root = top.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let before = snapshot(&sentinel);
        let bytes = compress(kind, build(&pieces));
        let limits = Limits { compressed_size: bytes.len() as u64, max_ratio: 50 };
        let _ = unpack(std::io::Cursor::new(bytes), "backup.tar", &root, &limits, None, Arc::new(AtomicBool::new(false)));

        prop_assert_eq!(snapshot(&sentinel), before, "something beside the root changed");
        let beside: Vec<_> = std::fs::read_dir(top.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        prop_assert_eq!(beside.len(), 2, "something was created beside the root: {:?}", beside);
        let real_root = std::fs::canonicalize(&root).unwrap();
        for (path, what) in snapshot(&root) {
            prop_assert!(!what.starts_with("file 4") && !what.starts_with("dir 1"), "{} kept a special bit: {}", path.display(), what);
            if what.starts_with("link ")
                && let Ok(real) = std::fs::canonicalize(&path)
            {
                prop_assert!(real.starts_with(&real_root), "{} resolves to {}", path.display(), real.display());
            }
        }
    }
}
