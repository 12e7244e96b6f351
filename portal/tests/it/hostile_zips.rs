//! Hostile uploads over the API (`POST /api/v1/projects/{name}/deployments`, the body is the ZIP):
//! each is refused with a JSON error whose `code` is stable and whose message names the culprit,
//! no revision is created, nothing lands outside the project, and the live site keeps answering
//! with its original content.
//!
//! The limits are set low (`[deploy]` of the test config) so the size cases stay small and fast.

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;
use zip::ZipWriter;

use crate::helpers::{example_zip, spawn_app_with, AppOptions};

/// The `[deploy]` limits of the test portal.
const LIMITS: &str = "max_upload_mb = 1\nmax_entries = 50\nmax_unpacked_mb = 2\n";

enum Entry<'a> {
    File(&'a str, Vec<u8>),
    Symlink(&'a str, &'a str),
}

/// A ZIP of `entries`, deflated, written without any of the checks `pack_dir` makes.
fn zip_of(entries: &[Entry]) -> Vec<u8> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).unix_permissions(0o644);
    for entry in entries {
        match entry {
            Entry::File(name, contents) => {
                writer.start_file(*name, options).expect("start entry");
                writer.write_all(contents).expect("write entry");
            }
            Entry::Symlink(name, target) => writer.add_symlink(*name, *target, options).expect("add symlink"),
        }
    }
    writer.finish().expect("finish zip").into_inner()
}

fn index() -> Entry<'static> {
    Entry::File("index.html", b"<h1>replaced by an attacker</h1>".to_vec())
}

/// Bytes that deflate cannot shrink, so a ZIP of them is as large as they are.
fn incompressible(n_bytes: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n_bytes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

struct Case {
    what: &'static str,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    /// What the message must mention (the entry's name, or the limit).
    names: String,
}

fn cases(marker: &str) -> Vec<Case> {
    let escaped = format!("../../../../../../tmp/{marker}-slip.txt");
    let nested = format!("assets/../../{marker}-nested.txt");
    let absolute = format!("/tmp/{marker}-absolute.txt");
    let many: Vec<String> = (0..60).map(|n| format!("page-{n}.html")).collect();
    vec![
        Case {
            what: "zip-slip with ../",
            body: zip_of(&[index(), Entry::File(&escaped, b"owned".to_vec())]),
            status: 422,
            code: "zip_slip",
            names: escaped.clone(),
        },
        Case {
            what: "zip-slip through a folder",
            body: zip_of(&[index(), Entry::File(&nested, b"owned".to_vec())]),
            status: 422,
            code: "zip_slip",
            names: nested.clone(),
        },
        Case {
            what: "absolute path",
            body: zip_of(&[index(), Entry::File(&absolute, b"owned".to_vec())]),
            status: 422,
            code: "absolute_path",
            names: absolute.clone(),
        },
        Case {
            what: "symlink to an absolute path",
            body: zip_of(&[index(), Entry::Symlink("passwd", "/etc/passwd")]),
            status: 422,
            code: "symlink_escape",
            names: "passwd".to_owned(),
        },
        Case {
            what: "symlink climbing out",
            body: zip_of(&[index(), Entry::Symlink("up", "../../../../etc")]),
            status: 422,
            code: "symlink_escape",
            names: "up".to_owned(),
        },
        Case {
            what: "file written through a symlink",
            body: zip_of(&[index(), Entry::Symlink("here", "."), Entry::File("here/../escape.txt", b"owned".to_vec())]),
            status: 422,
            code: "",
            names: "escape.txt".to_owned(),
        },
        // 64 MiB of zeros deflate to about 64 KiB: far under the upload limit, far over the
        // 2 MiB unpacked limit.
        // Three files of 1 MiB each stay under the per-file limit; together they pass 2 MiB.
        Case {
            what: "zip bomb of many small files",
            body: zip_of(&[
                index(),
                Entry::File("a.bin", vec![0; 1 << 20]),
                Entry::File("b.bin", vec![0; 1 << 20]),
                Entry::File("c.bin", vec![0; 1 << 20]),
            ]),
            status: 422,
            code: "too_large",
            names: "over the limit of 2097152 bytes".to_owned(),
        },
        Case {
            what: "zip bomb",
            body: zip_of(&[index(), Entry::File("bomb.bin", vec![0; 64 << 20])]),
            status: 422,
            code: "too_large",
            names: "2097152".to_owned(),
        },
        Case {
            what: "too many entries",
            body: zip_of(&std::iter::once(index()).chain(many.iter().map(|name| Entry::File(name, b"x".to_vec()))).collect::<Vec<_>>()),
            status: 422,
            code: "too_many_entries",
            names: "50".to_owned(),
        },
        Case {
            what: "not a ZIP",
            body: b"<html>this is an HTML page, not a ZIP</html>".to_vec(),
            status: 422,
            code: "not_a_zip",
            names: "not a ZIP".to_owned(),
        },
        Case {
            what: "oversized upload",
            body: incompressible(3 << 20),
            status: 413,
            code: "upload_too_large",
            names: "1048576".to_owned(),
        },
        Case { what: "empty upload", body: Vec::new(), status: 422, code: "not_a_zip", names: "not a ZIP".to_owned() },
    ]
}

#[tokio::test]
async fn every_hostile_upload_is_refused_with_a_clear_error_and_the_live_site_keeps_serving() {
    let app = spawn_app_with(AppOptions { extra_deploy: LIMITS.to_owned(), ..AppOptions::default() }).await;
    let token = app.api_token("zips@pusan.ac.kr").await;
    let live = app.deploy_live(&token, "zip-target", "static", example_zip("static-hello")).await;
    let original = app.app_get("zip-target", "/").await.text().await.expect("body");
    assert!(original.contains("Hello from Slipway (static site)"));

    let marker = format!("slipway-hostile-{}", uuid::Uuid::new_v4().simple());
    let mut wrong = Vec::new();
    for case in cases(&marker) {
        let (status, body) = app.deploy_zip(&token, "zip-target", case.body).await;
        let code = body["error"]["code"].as_str().unwrap_or_default();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        eprintln!("{}: {status} {code}: {message}", case.what);
        let code_ok = if case.code.is_empty() { !code.is_empty() } else { code == case.code };
        if status != case.status || !code_ok || !message.contains(&case.names) {
            wrong.push(format!("{}: expected {} {} naming {:?}, got {status} {body}", case.what, case.status, case.code, case.names));
        }
    }

    let revisions = app.revisions(&token, "zip-target").await;
    let numbers: Vec<i64> = revisions.iter().filter_map(|r| r["number"].as_i64()).collect();
    assert_eq!(numbers, [1], "no revision may be created by a refused upload: {revisions:?}");
    assert_eq!(revisions[0]["id"], live["id"]);
    assert_eq!(revisions[0]["status"], "live");
    let page = app.app_get("zip-target", "/").await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.text().await.expect("body"), original);
    // Nothing was written where the archives pointed, nor left in the portal's scratch folder.
    for name in ["slip.txt", "nested.txt", "absolute.txt"] {
        let path = std::path::PathBuf::from(format!("/tmp/{marker}-{name}"));
        assert!(!path.exists(), "{} was written", path.display());
    }
    assert!(!app.data_dir.join("escape.txt").exists());
    let scratch: Vec<_> =
        std::fs::read_dir(app.data_dir.join("tmp")).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(scratch.is_empty(), "scratch folders left behind: {scratch:?}");
    assert!(wrong.is_empty(), "{wrong:#?}");
}
