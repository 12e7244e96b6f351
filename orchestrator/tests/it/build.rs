//! Builds in the cluster on the Nomad simulator: the batch job fetches the uploaded source from a
//! loopback server by URL and checksum, and the packed result is read back from the allocation
//! (`fs/cat`); a wrong checksum fails the build with Nomad's message. The simulator does NOT run
//! the build steps (it packs the fetched source as the result); that Docker runs them on the
//! template's build image is for a real cluster to show.

use std::io::Read;
use std::time::Duration;

use orchestrator::runtime::nomad::{Artifact, BuildJob, ClusterBuildError, JobSettings, NomadRuntime};
use orchestrator::template::{self, ProjectDir};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{repo, spawn_simulator};
use crate::nomad::{check_contract, fast_config};

/// Serves `body` to every GET on a loopback port (the portal's signed artifact URL stands here).
async fn serve_bytes(body: Vec<u8>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let body = body.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut chunk = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                let header = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(header.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    port
}

fn build_job(source_port: u16, sha256: String) -> BuildJob {
    let dir = repo().join("examples/static-hello");
    let files = ProjectDir::new(dir);
    let plan = template::plan(template::detect(&files).unwrap(), &files).unwrap();
    BuildJob {
        app: "hello".to_owned(),
        revision: 1,
        plan,
        source: Artifact { url: format!("http://127.0.0.1:{source_port}/source.zip?expires=1&sig=x"), sha256, archive: "zip".to_owned() },
        memory_mb: 512,
        cpu_millicores: 1000,
    }
}

#[tokio::test]
async fn a_build_runs_as_a_batch_job_and_its_result_comes_back_from_the_allocation() {
    let simulator = spawn_simulator(&["--start-seconds", "0.05"]);
    let runtime = NomadRuntime::new(fast_config(&simulator, None), JobSettings::default()).unwrap();
    let zip = orchestrator::artifact::pack_dir(&repo().join("examples/static-hello"), &orchestrator::artifact::Limits::default()).unwrap();
    let sha = hex::encode(sha2::Sha256::digest(&zip));
    let port = serve_bytes(zip).await;

    let outcome = runtime.run_build(&build_job(port, sha.clone()), Duration::from_secs(20)).await.expect("the build completes");
    let mut unpacked = Vec::new();
    gunzip(&outcome.archive, &mut unpacked);
    assert!(String::from_utf8_lossy(&unpacked).contains("index.html"), "the result holds the project's files");
    assert!(outcome.log.iter().any(|line| line.contains("simulated build")), "{:?}", outcome.log);
    assert!(runtime.client().job("hello-build-r1").await.unwrap().is_none(), "the build job is purged");

    // A source that does not match its checksum: Nomad's artifact hook fails the task.
    let wrong = "0".repeat(64);
    match runtime.run_build(&build_job(port, wrong), Duration::from_secs(20)).await {
        Err(ClusterBuildError::Failed { status, log }) => {
            assert_eq!(status, "failed");
            assert!(log.iter().any(|line| line.contains("checksums did not match")), "{log:?}");
        }
        other => panic!("expected a failed build, got {other:?}"),
    }
    let requests = simulator.requests().await;
    check_contract(&requests, 2);
}

/// Reads a gzip stream's tar bytes with the system's `gzip` (no compression crate for one test).
fn gunzip(archive: &[u8], out: &mut Vec<u8>) {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip runs");
    child.stdin.take().unwrap().write_all(archive).unwrap();
    child.stdout.take().unwrap().read_to_end(out).unwrap();
    assert!(child.wait().unwrap().success(), "the result is gzip");
}
