//! Bad configuration makes `drover` exit non-zero with one line naming the problem.

mod support;

use support::run_drover;

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
