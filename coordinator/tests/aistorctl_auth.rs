//! `aistorctl` against a real coordinator run with `--api-tokens`: without a token
//! every client (cluster, workloads, autoscalers, the live views) is refused with
//! kubectl's "You must be logged in" and a pointer to `--token`; a read token reads
//! (given as `--token`, `--token-file` with a final newline, or the environment); a
//! read token acting is refused as Forbidden; an act token gets past auth. The token
//! is never printed. Loopback only.

mod support;

use std::io::Write;
use std::time::Duration;

use aistor_coordinator::cli::{self, Cli, CliError};
use clap::Parser;
use support::Coordinator;

const READER: &str = "reader-token-0123456789";
const ACTOR: &str = "actor-token-0123456789ab";

fn tokens_file() -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        file,
        "# aistorctl tests\n{READER},ana,read\n{ACTOR},ops,act"
    )
    .unwrap();
    file
}

async fn coordinator(tokens: &tempfile::NamedTempFile) -> Coordinator {
    let path = tokens.path().to_owned();
    Coordinator::start(|config| config.api_tokens = Some(path)).await
}

/// Runs `aistorctl --server <c> <args>` in-process, with a guard so a hang (a live
/// view retrying a refused token forever) fails the test.
async fn aistorctl(c: &Coordinator, args: &[&str]) -> (Result<(), CliError>, String) {
    let url = format!("http://{}", c.grpc);
    let argv = ["aistorctl", "--server", url.as_str()]
        .into_iter()
        .chain(args.iter().copied());
    let cli = Cli::try_parse_from(argv).expect("arguments parse");
    let mut out = Vec::new();
    let result = tokio::time::timeout(Duration::from_secs(20), cli::run(cli, &mut out))
        .await
        .unwrap_or_else(|_| panic!("aistorctl {args:?} finished within 20s"));
    (result, String::from_utf8(out).unwrap())
}

/// `args` with `--token TOKEN` in front (a global flag).
fn with<'a>(token: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    ["--token", token]
        .into_iter()
        .chain(args.iter().copied())
        .collect()
}

/// What each client of aistorctl reads with: cluster (unary and the `WatchNodes`
/// stream), workloads, autoscalers, and the polled live views.
const READS: &[&[&str]] = &[
    &["nodes"],
    &["pods"],
    &["gpus"],
    &["get", "pods"],
    &["get", "autoscalers", "-A"],
    &["describe", "autoscaler", "autoscaler-00000000"],
    &["top", "nodes", "--frames", "1"],
    &["top", "gpus", "--frames", "1"],
    &["top", "pods", "--frames", "1"],
    &["top", "autoscalers", "--frames", "1"],
];

/// Acting commands (a Pod and an autoscaler).
const ACTS: &[&[&str]] = &[
    &["delete", "pod", "nobody"],
    &["delete", "autoscaler", "autoscaler-00000000"],
    &["checkpoint", "nobody"],
];

#[tokio::test]
async fn without_a_token_every_client_is_told_to_log_in() {
    let tokens = tokens_file();
    let c = coordinator(&tokens).await;
    for args in READS.iter().chain(ACTS) {
        let (result, out) = aistorctl(&c, args).await;
        let err = result.expect_err("refused");
        assert!(
            matches!(err, CliError::Unauthenticated { .. }),
            "{args:?}: {err:?}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("You must be logged in to the server (Unauthorized): "),
            "{args:?}: {text}"
        );
        assert!(
            text.contains("needs a bearer token"),
            "the coordinator's reason: {text}"
        );
        assert!(
            text.contains("--token") && text.contains("AISTOR_TOKEN"),
            "{text}"
        );
        assert!(!text.contains('\n'), "one line: {text}");
        assert_eq!(out, "", "{args:?}: nothing on stdout");
    }

    // A token the coordinator does not know: the same, with its reason.
    let (result, _) = aistorctl(&c, &with("not-a-known-token-0000", &["nodes"])).await;
    let text = result.unwrap_err().to_string();
    assert!(text.starts_with("You must be logged in"), "{text}");
    assert!(text.contains("the bearer token is not valid"), "{text}");
    assert!(
        !text.contains("not-a-known-token"),
        "the token is not shown: {text}"
    );
    c.stop().await;
}

#[tokio::test]
async fn a_read_token_reads_through_every_client() {
    let tokens = tokens_file();
    let c = coordinator(&tokens).await;
    let (result, out) = aistorctl(&c, &with(READER, &["nodes"])).await;
    result.expect("nodes with a read token");
    assert_eq!(out, cli::NO_NODES);
    for args in READS {
        let (result, out) = aistorctl(&c, &with(READER, args)).await;
        if args[0] == "describe" {
            // Past auth to the coordinator's own answer.
            match result {
                Err(CliError::Rpc { code, .. }) => assert_eq!(code, tonic::Code::NotFound),
                other => panic!("{args:?}: {other:?}"),
            }
        } else {
            result.unwrap_or_else(|e| panic!("{args:?}: {e}"));
            // A live view's error frame would still exit 0.
            assert!(!out.contains("error:"), "{args:?}: {out}");
        }
    }

    // --token-file: the file's final newline is not part of the token.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{READER}\n")).unwrap();
    let file = file.to_str().unwrap();
    let (result, out) = aistorctl(&c, &["--token-file", file, "nodes"]).await;
    result.expect("nodes with a token file");
    assert_eq!(out, cli::NO_NODES);

    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    let (result, _) = aistorctl(&c, &["nodes", "--token-file", missing]).await;
    let text = result.unwrap_err().to_string();
    assert!(
        text.starts_with(&format!("token file {missing} ")),
        "{text}"
    );
    c.stop().await;
}

#[tokio::test]
async fn a_read_token_may_not_act_and_an_act_token_may() {
    let tokens = tokens_file();
    let c = coordinator(&tokens).await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pod.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: idle, namespace: default}\n\
         spec: {containers: [{name: c, image: busybox}]}\n",
    )
    .unwrap();
    let apply = ["apply", "-f", manifest.to_str().unwrap()];
    for args in ACTS.iter().copied().chain([&apply[..]]) {
        let (result, out) = aistorctl(&c, &with(READER, args)).await;
        let err = result.expect_err("refused");
        assert!(
            matches!(err, CliError::Forbidden { .. }),
            "{args:?}: {err:?}"
        );
        let text = err.to_string();
        assert!(text.starts_with("Forbidden: "), "{text}");
        assert!(text.contains("\"ana\" may read but not act"), "{text}");
        assert!(text.contains("act role"), "{text}");
        assert_eq!(out, "");

        let (result, _) = aistorctl(&c, &with(ACTOR, args)).await;
        if let Err(err) = result {
            assert!(!err.is_about_the_token(), "{args:?}: past auth: {err}");
        }
    }
    // Past auth to the coordinator's own answer.
    let (result, _) = aistorctl(
        &c,
        &with(ACTOR, &["delete", "autoscaler", "autoscaler-00000000"]),
    )
    .await;
    match result {
        Err(CliError::Rpc { code, .. }) => assert_eq!(code, tonic::Code::NotFound),
        other => panic!("{other:?}"),
    }
    c.stop().await;
}

fn binary() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_aistorctl"));
    for var in [
        "AISTOR_SERVER",
        "AISTOR_OUTPUT",
        "AISTOR_TOKEN",
        "AISTOR_TOKEN_FILE",
        "AISTOR_NAMESPACE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

#[tokio::test]
async fn the_binary_takes_the_token_from_the_environment_and_never_prints_it() {
    let tokens = tokens_file();
    let c = coordinator(&tokens).await;
    let server = format!("http://{}", c.grpc);

    // No token: exit 1, the message on stderr.
    let out = binary()
        .args(["--server", &server, "nodes"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("error: You must be logged in to the server (Unauthorized): "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // AISTOR_TOKEN reads.
    let out = binary()
        .args(["--server", &server, "nodes"])
        .env("AISTOR_TOKEN", READER)
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), cli::NO_NODES);

    // AISTOR_TOKEN_FILE with a final newline reads.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{READER}\n")).unwrap();
    let out = binary()
        .args(["--server", &server, "nodes"])
        .env("AISTOR_TOKEN_FILE", &file)
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Refused, an unknown token or a read token acting: exit 1, the token not shown.
    let wrong = "wrong-secret-token-0123456789";
    for (token, args) in [
        (wrong, &["nodes"][..]),
        (READER, &["delete", "autoscaler", "autoscaler-00000000"][..]),
    ] {
        let out = binary()
            .args(["--server", &server])
            .args(args)
            .env("AISTOR_TOKEN", token)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(!stderr.contains(token), "{stderr}");
    }

    // Both ways at once: clap refuses, naming both.
    let out = binary()
        .args(["--server", &server, "--token", READER, "nodes"])
        .env("AISTOR_TOKEN_FILE", &file)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("--token") && stderr.contains("--token-file"),
        "{stderr}"
    );

    // --help does not show the environment's token.
    let out = binary()
        .args(["--help"])
        .env("AISTOR_TOKEN", wrong)
        .output()
        .await
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("--token"), "{help}");
    assert!(help.contains("AISTOR_TOKEN"), "{help}");
    assert!(!help.contains(wrong), "{help}");
    c.stop().await;
}
