//! The allocation exec WebSocket client (`NomadClient::exec`) against the simulator's exec
//! endpoint, which speaks the frames and close codes of hashistack.md §8: stdin echoed back as
//! base64 stdout frames, exit codes (a missing `exit_code` is 0), the connection dropped after
//! `exited`, and refusals (bad token, unknown task, stopped allocation) as close frames after 101;
//! and `NomadRuntime::open_shell`, the owner shell on top of it.

use std::time::Duration;

use orchestrator::runtime::nomad::{ExecError, ExecEvent, JobSettings, NomadRuntime};

use crate::helpers::spawn_simulator;
use crate::nomad::{deployment, fast_config};

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|word| (*word).to_owned()).collect()
}

#[tokio::test]
async fn exec_streams_stdin_and_stdout_and_reports_exit_codes_and_refusals() {
    let simulator = spawn_simulator(&["--token", "t0ken", "--deploy-seconds", "0.2", "--start-seconds", "0.05"]);
    let runtime = NomadRuntime::new(fast_config(&simulator, Some("t0ken")), JobSettings::default()).unwrap();
    runtime.deploy(&deployment("quiz", 1)).await.unwrap();
    assert!(runtime.wait_ready("quiz", 1, Duration::from_secs(10)).await.unwrap());
    let (instances, _) = runtime.instances("quiz").await.unwrap();
    let alloc_id = instances[0].alloc_id.clone();
    let client = runtime.client();

    // An interactive program (the simulator's `cat`): what goes in comes back, in order, also
    // past one frame's 1024 bytes; closing stdin ends it with code 0.
    let mut session = client.exec(&alloc_id, "app", &argv(&["/bin/cat"]), true).await.unwrap();
    session.resize(40, 120).await.unwrap();
    session.heartbeat().await.unwrap();
    session.send_stdin(b"ls -la\n").await.unwrap();
    let big: Vec<u8> = (0..3000).map(|i| b'a' + (i % 26) as u8).collect();
    session.send_stdin(&big).await.unwrap();
    session.close_stdin().await.unwrap();
    let (stdout, stderr, code) = session.collect(Duration::from_secs(10)).await.unwrap();
    let mut expected = b"ls -la\n".to_vec();
    expected.extend_from_slice(&big);
    assert_eq!(stdout, expected);
    assert!(stderr.is_empty());
    assert_eq!(code, 0);

    // A command that exits at once with a code.
    let mut session = client.exec(&alloc_id, "app", &argv(&["/bin/sh", "-c", "exit 3"]), false).await.unwrap();
    assert_eq!(session.next_event().await.unwrap(), Some(ExecEvent::Exited(3)));
    assert_eq!(session.next_event().await.unwrap(), None, "the session ends after exited");

    // Refusals come as close frames after the upgrade.
    let closed = |result: Result<Option<ExecEvent>, ExecError>| match result {
        Err(ExecError::Closed { code, reason }) => (code, reason),
        other => panic!("expected a close frame, got {other:?}"),
    };
    let mut session = client.exec(&alloc_id, "nope", &argv(&["/bin/sh"]), true).await.unwrap();
    assert_eq!(closed(session.next_event().await), (1008, "task not found".to_owned()));

    let mut wrong_token = fast_config(&simulator, Some("wrong"));
    wrong_token.retries = 0;
    let stranger = orchestrator::runtime::nomad::NomadClient::new(wrong_token).unwrap();
    let mut session = stranger.exec(&alloc_id, "app", &argv(&["/bin/sh"]), true).await.unwrap();
    assert_eq!(closed(session.next_event().await), (1008, "ACL token not found".to_owned()));

    runtime.scale("quiz", 0).await.unwrap();
    let mut session = client.exec(&alloc_id, "app", &argv(&["/bin/sh"]), true).await.unwrap();
    assert_eq!(closed(session.next_event().await), (1008, "task is not running".to_owned()));

    // The token went in the upgrade's header, never in the URL.
    let requests = simulator.requests().await;
    let exec_requests: Vec<_> = requests.iter().filter(|request| request["Path"].as_str().unwrap_or("").ends_with("/exec")).collect();
    assert_eq!(exec_requests.len(), 5);
    assert!(exec_requests.iter().all(|request| !request["Query"].as_str().unwrap().contains("t0ken")));
    assert!(exec_requests[0]["Query"].as_str().unwrap().contains("command=%5B%22%2Fbin%2Fcat%22%5D"), "{:?}", exec_requests[0]);
}

#[tokio::test]
async fn an_owner_shell_thaws_a_frozen_app_and_carries_input_and_output_as_channel_messages() {
    use orchestrator::runtime::nomad::ShellError;
    use orchestrator::runtime::Runtime as _;
    use orchestrator::terminal::remote::{RemoteInput, RemoteOutput};
    use orchestrator::terminal::WindowSize;

    let simulator = spawn_simulator(&["--deploy-seconds", "0.2", "--start-seconds", "0.05"]);
    let runtime = NomadRuntime::new(fast_config(&simulator, None), JobSettings::default()).unwrap();
    let size = WindowSize { cols: 100, rows: 30 };
    match runtime.open_shell("ghost", size).await {
        Err(ShellError::NotRunning { app }) => assert_eq!(app, "ghost"),
        other => panic!("a missing app has no shell: {other:?}"),
    }
    runtime.deploy(&deployment("quiz", 4)).await.unwrap();
    assert!(runtime.wait_ready("quiz", 1, Duration::from_secs(10)).await.unwrap());
    runtime.freeze("quiz").await.unwrap();

    let shell = runtime.open_shell("quiz", size).await.unwrap();
    let (instances, _) = runtime.instances("quiz").await.unwrap();
    assert_eq!(shell.instance, instances[0].alloc_id);
    assert_eq!(shell.revision, Some(4));
    let requests = simulator.requests().await;
    let signals: Vec<&str> = requests
        .iter()
        .filter(|request| request["Path"].as_str().unwrap_or("").ends_with("/signal"))
        .map(|request| request["Body"]["Signal"].as_str().unwrap())
        .collect();
    assert_eq!(signals, vec!["SIGSTOP", "SIGCONT"], "the frozen app was thawed for the shell");

    let mut remote = shell.remote;
    remote.input.send(RemoteInput::Resize(WindowSize { cols: 132, rows: 43 })).await.unwrap();
    remote.input.send(RemoteInput::Bytes("echo 안녕\r".as_bytes().to_vec())).await.unwrap();
    let mut echoed = Vec::new();
    while echoed != "echo 안녕\r".as_bytes() {
        match tokio::time::timeout(Duration::from_secs(10), remote.output.recv()).await.expect("output within 10 s") {
            Some(RemoteOutput::Bytes(bytes)) => echoed.extend(bytes),
            other => panic!("expected output, got {other:?} after {echoed:?}"),
        }
    }
    // Ending the session closes the shell's input; the exec request ran `/bin/sh -i` in a tty.
    remote.pumps.end(remote.input).await;
    let requests = simulator.requests().await;
    let exec = requests.iter().find(|request| request["Path"].as_str().unwrap_or("").ends_with("/exec")).expect("an exec request");
    let query = exec["Query"].as_str().unwrap();
    assert!(query.contains("command=%5B%22%2Fbin%2Fsh%22%2C%22-i%22%5D") && query.contains("tty=true"), "{query}");
}
