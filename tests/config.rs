//! Bad configuration makes `drover` exit non-zero with one line naming the problem.

mod support;

use std::process::Command;

use support::{drover_bin, run_drover};

#[test]
fn bad_configuration_exits_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let unwritable = file.join("sub");
    let unwritable = unwritable.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--id",
                "1",
                "--listen",
                "not-an-address",
                "--data-dir",
                data,
                "--initial-cluster",
                "1=127.0.0.1:7001",
            ],
            "--listen",
        ),
        (
            &[
                "--listen",
                "127.0.0.1:7001",
                "--data-dir",
                data,
                "--initial-cluster",
                "1=127.0.0.1:7001",
            ],
            "--id is required",
        ),
        (
            &[
                "--id",
                "4",
                "--listen",
                "127.0.0.1:7001",
                "--data-dir",
                data,
                "--initial-cluster",
                "1=127.0.0.1:7001",
            ],
            "does not list this node's id 4",
        ),
        (
            &[
                "--id",
                "1",
                "--listen",
                "127.0.0.1:7001",
                "--data-dir",
                data,
                "--initial-cluster",
                "1=127.0.0.1:7001",
                "--join",
                "127.0.0.1:7002",
            ],
            "both set",
        ),
        (
            &[
                "--id",
                "1",
                "--listen",
                "127.0.0.1:7001",
                "--data-dir",
                data,
            ],
            "one of --initial-cluster",
        ),
        (
            &[
                "--id",
                "1",
                "--listen",
                "127.0.0.1:7001",
                "--data-dir",
                unwritable,
                "--initial-cluster",
                "1=127.0.0.1:7001",
            ],
            "--data-dir",
        ),
        (
            &[
                "--id",
                "1",
                "--listen",
                "127.0.0.1:7001",
                "--data-dir",
                data,
                "--initial-cluster",
                "1=127.0.0.1:x",
            ],
            "--initial-cluster",
        ),
    ];
    for (args, want) in cases {
        let (code, stderr) = run_drover(args, dir.path());
        assert!(code.is_some_and(|c| c != 0), "{args:?} exited {code:?}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{args:?}: expected one line, got {stderr:?}"
        );
        assert!(
            lines[0].contains(want),
            "{args:?}: {stderr:?} does not mention {want:?}"
        );
    }
}

/// Flags win over `DROVER_*` variables, which win over the TOML file (`--config`): each layer
/// names a different bad address, and the error names the one that won.
#[test]
fn flags_win_over_env_which_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("drover.toml");
    std::fs::write(
        &file,
        format!(
            "id = 1\nlisten = \"from-file\"\ninitial_cluster = \"1=127.0.0.1:7001\"\n\
             [storage]\ndata_dir = {:?}\n",
            dir.path().join("data")
        ),
    )
    .unwrap();
    let run = |env: Option<&str>, flag: Option<&str>| -> String {
        let mut cmd = Command::new(drover_bin());
        cmd.arg("--config")
            .arg(&file)
            .current_dir(dir.path())
            .env_remove("DROVER_LISTEN");
        if let Some(v) = env {
            cmd.env("DROVER_LISTEN", v);
        }
        if let Some(v) = flag {
            cmd.args(["--listen", v]);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        stderr
    };
    let file_only = run(None, None);
    assert!(file_only.contains("\"from-file\""), "{file_only}");
    let env = run(Some("from-env"), None);
    assert!(env.contains("\"from-env\""), "{env}");
    let flag = run(Some("from-env"), Some("from-flag"));
    assert!(flag.contains("\"from-flag\""), "{flag}");
}
