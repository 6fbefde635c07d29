//! Property tests for the parsers outside `parse/` (issue 12): `/proc/<pid>/cgroup`
//! and the kubelet's cgroup layouts. Arbitrary input never panics and gives bounded
//! output that comes from the input; well-formed input is recognised exactly.
//! (The DCGM payload parser's properties are in `gpu_dcgm.rs`.)

use aistor_agent::pods::layout::{container_id, pod_cgroup};
use aistor_agent::source::containerd::parse_proc_cgroup;
use proptest::prelude::*;

/// A path segment of the kinds that matter: ordinary names, `.`, `..`, empty.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9._:-]{1,12}",
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just(String::new()),
    ]
}

/// One `/proc/<pid>/cgroup` line, v1 or v2, sometimes malformed.
fn cgroup_line() -> impl Strategy<Value = String> {
    let controllers = prop_oneof![
        Just(String::new()),
        Just("memory".to_owned()),
        Just("cpu,cpuacct".to_owned()),
        Just("name=systemd".to_owned()),
        "[a-z,=]{0,10}",
    ];
    let path = prop::collection::vec(segment(), 0..6).prop_map(|s| format!("/{}", s.join("/")));
    let relative = "[a-z/.]{0,10}";
    (
        "[0-9]{1,2}",
        controllers,
        prop_oneof![path, relative.prop_map(|p| p.to_owned())],
    )
        .prop_map(|(id, c, p)| format!("{id}:{c}:{p}"))
}

fn uuid() -> impl Strategy<Value = String> {
    "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
}

proptest! {
    #[test]
    fn proc_cgroup_never_panics_on_any_text(text in any::<String>()) {
        if let Some(m) = parse_proc_cgroup(&text) {
            prop_assert!(m.path.len() <= text.len());
            prop_assert!(text.contains(&m.controllers));
            prop_assert!(m.escapes <= text.len() / 3);
        }
    }

    #[test]
    fn proc_cgroup_paths_are_clean_and_come_from_the_input(
        lines in prop::collection::vec(cgroup_line(), 0..8),
    ) {
        let text = lines.join("\n");
        if let Some(m) = parse_proc_cgroup(&text) {
            prop_assert!(!m.path.starts_with('/'), "{:?}", m.path);
            for part in m.path.split('/').filter(|p| !p.is_empty()) {
                prop_assert!(part != ".." && part != ".", "{:?}", m.path);
                prop_assert!(text.contains(part));
            }
            prop_assert!(!m.path.split('/').any(str::is_empty) || m.path.is_empty(), "{:?}", m.path);
            prop_assert!(m.path.len() <= text.len());
            prop_assert!(m.escapes <= 6);
        }
    }

    #[test]
    fn a_unified_line_is_picked_with_its_path(
        parts in prop::collection::vec("[a-z0-9-]{1,12}(\\.slice|\\.scope)?", 1..6),
        escapes in 0usize..3,
    ) {
        let path = format!("{}/{}", "/..".repeat(escapes), parts.join("/"));
        let text = format!("12:memory:/elsewhere\n0::{path}\n");
        let m = parse_proc_cgroup(&text).expect("a usable 0:: line");
        prop_assert_eq!(m.controllers, "");
        prop_assert_eq!(m.escapes, escapes);
        prop_assert_eq!(m.path, parts.join("/"));
    }

    #[test]
    fn layouts_never_panic_and_return_only_what_the_path_names(path in any::<String>()) {
        if let Some(pod) = pod_cgroup(&path) {
            prop_assert_eq!(pod.uid.len(), 36);
            prop_assert!(path.replace('_', "-").contains(&pod.uid), "{path:?}");
            prop_assert!(["guaranteed", "burstable", "besteffort"].contains(&pod.qos_class));
        }
        if let Some(id) = container_id(&path) {
            prop_assert_eq!(id.len(), 64);
            prop_assert!(path.contains(id));
        }
    }

    #[test]
    fn layouts_with_junk_segments_never_panic(
        parts in prop::collection::vec(prop_oneof![
            segment(),
            Just("kubepods.slice".to_owned()),
            Just("kubepods".to_owned()),
            Just("kubepods-burstable.slice".to_owned()),
            Just("burstable".to_owned()),
            "kubepods-[a-z]{0,10}-pod[0-9a-f_-]{0,40}\\.slice",
            "pod[0-9a-f-]{0,40}",
        ], 0..5),
    ) {
        let path = parts.join("/");
        if let Some(pod) = pod_cgroup(&path) {
            prop_assert!(path.replace('_', "-").contains(&pod.uid), "{path:?}");
        }
    }

    #[test]
    fn every_kubelet_layout_is_recognised(
        uid in uuid(),
        qos in prop::sample::select(vec!["guaranteed", "burstable", "besteffort"]),
        systemd in any::<bool>(),
        slashes in any::<bool>(),
    ) {
        let path = match (systemd, qos) {
            (true, "guaranteed") => format!("kubepods.slice/kubepods-pod{}.slice", uid.replace('-', "_")),
            (true, q) => format!(
                "kubepods.slice/kubepods-{q}.slice/kubepods-{q}-pod{}.slice",
                uid.replace('-', "_")
            ),
            (false, "guaranteed") => format!("kubepods/pod{uid}"),
            (false, q) => format!("kubepods/{q}/pod{uid}"),
        };
        let path = if slashes { format!("/{path}/") } else { path };
        let pod = pod_cgroup(&path).expect("recognised");
        prop_assert_eq!(pod.uid, uid);
        prop_assert_eq!(pod.qos_class, qos);
    }

    #[test]
    fn container_scopes_give_their_id(
        id in "[0-9a-f]{64}",
        runtime in prop::sample::select(vec!["cri-containerd", "crio", "docker"]),
    ) {
        let scope = format!("{runtime}-{id}.scope");
        prop_assert_eq!(container_id(&scope), Some(id.as_str()));
        prop_assert_eq!(container_id(&id), Some(id.as_str()));
        // One character short or long is no container id.
        prop_assert_eq!(container_id(&id[1..]), None);
        let longer = format!("{id}0");
        prop_assert_eq!(container_id(&longer), None);
    }
}
