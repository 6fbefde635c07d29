//! What a report must be before anything in it is believed: names, sizes and times
//! within bounds. Pure rules over plain values; the shell maps the error to its
//! protocol and counts it. Every error names the field (with its index in a list).

use std::fmt;
use std::time::Duration;

/// Bounds on what one report may carry. Kubernetes' own limits where it has them
/// (DNS subdomain names of 253 bytes, namespaces of 63); generous elsewhere, so
/// only a broken or hostile agent meets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_name_bytes: usize,
    pub max_namespace_bytes: usize,
    pub max_id_bytes: usize,
    pub max_path_bytes: usize,
    pub max_pods: usize,
    pub max_containers_per_pod: usize,
    /// How far ahead of the coordinator's wall clock an agent's may be.
    pub max_clock_ahead: Duration,
    /// The longest collection interval an agent may announce (it sets staleness).
    pub max_collect_interval: Duration,
    /// The largest encoded report accepted (the agent keeps its reports under it).
    pub max_report_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_name_bytes: 253,
            max_namespace_bytes: 63,
            max_id_bytes: 128,
            max_path_bytes: 4096,
            max_pods: 2000,
            max_containers_per_pod: 256,
            max_clock_ahead: Duration::from_secs(600),
            max_collect_interval: Duration::from_secs(3600),
            max_report_bytes: 4 << 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    Required(String),
    TooLong {
        field: String,
        bytes: usize,
        max: usize,
    },
    BadCharacter {
        field: String,
        at: usize,
    },
    ZeroSeq,
    TooMany {
        field: String,
        count: usize,
        max: usize,
    },
    ClockAhead {
        ahead: Duration,
        max: Duration,
    },
    IntervalTooLong {
        interval: Duration,
        max: Duration,
    },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Required(field) => write!(f, "field `{field}` is required"),
            Self::TooLong { field, bytes, max } => {
                write!(
                    f,
                    "field `{field}` is {bytes} bytes, over the limit of {max}"
                )
            }
            Self::BadCharacter { field, at } => write!(
                f,
                "field `{field}` has a character that is not allowed at byte {at}"
            ),
            Self::ZeroSeq => write!(f, "field `seq` is 0; seqs start at 1"),
            Self::TooMany { field, count, max } => {
                write!(
                    f,
                    "field `{field}` has {count} entries, over the limit of {max}"
                )
            }
            Self::ClockAhead { ahead, max } => write!(
                f,
                "field `wall_time_unix_nanos` is {ahead:?} ahead of the coordinator's clock (at most {max:?} is accepted)"
            ),
            Self::IntervalTooLong { interval, max } => write!(
                f,
                "field `collect_interval_nanos` is {interval:?}, over the limit of {max:?}"
            ),
        }
    }
}

impl std::error::Error for Invalid {}

/// A node name: what Kubernetes accepts (a DNS subdomain) plus the upper-case and
/// `_` that host names outside Kubernetes have.
pub fn node_name(name: &str, limits: &Limits) -> Result<(), Invalid> {
    let field = "node.name";
    required(field, name)?;
    length(field, name, limits.max_name_bytes)?;
    match name
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')))
    {
        Some(at) => Err(Invalid::BadCharacter {
            field: field.to_owned(),
            at,
        }),
        None => Ok(()),
    }
}

/// The identity and timing of one report.
#[derive(Debug, Clone, Copy)]
pub struct ReportHead<'a> {
    pub node_name: Option<&'a str>,
    pub boot_id: &'a str,
    pub agent_instance: &'a str,
    pub seq: u64,
    pub wall_time_unix_nanos: u64,
    pub collect_interval_nanos: u64,
    pub pods: usize,
}

pub fn report_head(
    head: &ReportHead<'_>,
    now_wall_unix_nanos: u64,
    limits: &Limits,
) -> Result<(), Invalid> {
    let name = head
        .node_name
        .ok_or_else(|| Invalid::Required("node".to_owned()))?;
    node_name(name, limits)?;
    if head.seq == 0 {
        return Err(Invalid::ZeroSeq);
    }
    required("agent_instance", head.agent_instance)?;
    text("agent_instance", head.agent_instance, limits.max_id_bytes)?;
    text("node.boot_id", head.boot_id, limits.max_id_bytes)?;
    let ahead = Duration::from_nanos(
        head.wall_time_unix_nanos
            .saturating_sub(now_wall_unix_nanos),
    );
    if ahead > limits.max_clock_ahead {
        return Err(Invalid::ClockAhead {
            ahead,
            max: limits.max_clock_ahead,
        });
    }
    let interval = Duration::from_nanos(head.collect_interval_nanos);
    if interval > limits.max_collect_interval {
        return Err(Invalid::IntervalTooLong {
            interval,
            max: limits.max_collect_interval,
        });
    }
    if head.pods > limits.max_pods {
        return Err(Invalid::TooMany {
            field: "pods".to_owned(),
            count: head.pods,
            max: limits.max_pods,
        });
    }
    Ok(())
}

/// The text fields of one pod of a report (`index` is its place in `pods`).
#[derive(Debug, Clone, Copy)]
pub struct PodText<'a> {
    pub uid: &'a str,
    pub name: &'a str,
    pub namespace: &'a str,
    pub cgroup_path: &'a str,
    pub containers: usize,
}

pub fn pod(index: usize, pod: &PodText<'_>, limits: &Limits) -> Result<(), Invalid> {
    let at = |f: &str| format!("pods[{index}].{f}");
    text(&at("uid"), pod.uid, limits.max_id_bytes)?;
    text(&at("name"), pod.name, limits.max_name_bytes)?;
    text(&at("namespace"), pod.namespace, limits.max_namespace_bytes)?;
    text(&at("cgroup_path"), pod.cgroup_path, limits.max_path_bytes)?;
    if pod.uid.is_empty() && pod.cgroup_path.is_empty() {
        return Err(Invalid::Required(at("uid")));
    }
    if pod.containers > limits.max_containers_per_pod {
        return Err(Invalid::TooMany {
            field: at("containers"),
            count: pod.containers,
            max: limits.max_containers_per_pod,
        });
    }
    Ok(())
}

/// The text fields of one container (`pod` and `index` place it in the report).
#[derive(Debug, Clone, Copy)]
pub struct ContainerText<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub image: &'a str,
}

pub fn container(
    pod: usize,
    index: usize,
    c: &ContainerText<'_>,
    limits: &Limits,
) -> Result<(), Invalid> {
    let at = |f: &str| format!("pods[{pod}].containers[{index}].{f}");
    text(&at("id"), c.id, limits.max_id_bytes)?;
    text(&at("name"), c.name, limits.max_name_bytes)?;
    text(&at("image"), c.image, limits.max_path_bytes)
}

fn required(field: &str, value: &str) -> Result<(), Invalid> {
    if value.is_empty() {
        Err(Invalid::Required(field.to_owned()))
    } else {
        Ok(())
    }
}

fn length(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    if value.len() > max {
        Err(Invalid::TooLong {
            field: field.to_owned(),
            bytes: value.len(),
            max,
        })
    } else {
        Ok(())
    }
}

/// Bounded, and no control characters (a newline in a name forges log lines and
/// table rows).
fn text(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    length(field, value, max)?;
    match value.char_indices().find(|(_, c)| c.is_control()) {
        Some((at, _)) => Err(Invalid::BadCharacter {
            field: field.to_owned(),
            at,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000_000_000;

    fn head() -> ReportHead<'static> {
        ReportHead {
            node_name: Some("node-a.example_1"),
            boot_id: "boot",
            agent_instance: "12@3",
            seq: 1,
            wall_time_unix_nanos: NOW,
            collect_interval_nanos: 1_000_000_000,
            pods: 110,
        }
    }

    fn check(h: ReportHead<'_>) -> Result<(), String> {
        report_head(&h, NOW, &Limits::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_sound_head_passes() {
        assert_eq!(check(head()), Ok(()));
        let at_limits = ReportHead {
            wall_time_unix_nanos: NOW + 600_000_000_000,
            collect_interval_nanos: 3_600_000_000_000,
            pods: 2000,
            node_name: Some(&*Box::leak("n".repeat(253).into_boxed_str())),
            ..head()
        };
        assert_eq!(check(at_limits), Ok(()));
        // An agent behind the coordinator is fine (replays are old by nature).
        assert_eq!(
            check(ReportHead {
                wall_time_unix_nanos: 0,
                ..head()
            }),
            Ok(())
        );
    }

    #[test]
    fn each_rule_names_its_field() {
        let long = "n".repeat(254);
        let cases: Vec<(ReportHead<'_>, &str)> = vec![
            (
                ReportHead {
                    node_name: None,
                    ..head()
                },
                "field `node` is required",
            ),
            (
                ReportHead {
                    node_name: Some(""),
                    ..head()
                },
                "field `node.name` is required",
            ),
            (
                ReportHead {
                    node_name: Some(&long),
                    ..head()
                },
                "field `node.name` is 254 bytes, over the limit of 253",
            ),
            (
                ReportHead {
                    node_name: Some("a\nb"),
                    ..head()
                },
                "field `node.name` has a character that is not allowed at byte 1",
            ),
            (
                ReportHead {
                    node_name: Some("a b"),
                    ..head()
                },
                "field `node.name` has a character that is not allowed at byte 1",
            ),
            (ReportHead { seq: 0, ..head() }, "field `seq` is 0"),
            (
                ReportHead {
                    agent_instance: "",
                    ..head()
                },
                "field `agent_instance` is required",
            ),
            (
                ReportHead {
                    agent_instance: &long,
                    ..head()
                },
                "field `agent_instance` is 254 bytes, over the limit of 128",
            ),
            (
                ReportHead {
                    boot_id: "b\u{7}",
                    ..head()
                },
                "field `node.boot_id` has a character",
            ),
            (
                ReportHead {
                    wall_time_unix_nanos: NOW + 600_000_000_001,
                    ..head()
                },
                "field `wall_time_unix_nanos` is 600.000000001s ahead",
            ),
            (
                ReportHead {
                    wall_time_unix_nanos: u64::MAX,
                    ..head()
                },
                "field `wall_time_unix_nanos`",
            ),
            (
                ReportHead {
                    collect_interval_nanos: 3_600_000_000_001,
                    ..head()
                },
                "field `collect_interval_nanos` is 3600.000000001s",
            ),
            (
                ReportHead {
                    pods: 2001,
                    ..head()
                },
                "field `pods` has 2001 entries, over the limit of 2000",
            ),
        ];
        for (h, expected) in cases {
            let err = check(h).unwrap_err();
            assert!(
                err.starts_with(expected),
                "{err:?} should start with {expected:?}"
            );
        }
    }

    fn pod_text() -> PodText<'static> {
        PodText {
            uid: "u",
            name: "p",
            namespace: "ns",
            cgroup_path: "kubepods/podu",
            containers: 3,
        }
    }

    #[test]
    fn pods_and_containers_are_bounded_with_their_place_named() {
        let l = Limits::default();
        assert_eq!(pod(0, &pod_text(), &l), Ok(()));
        let (uid, name, namespace, path) = (
            "u".repeat(128),
            "p".repeat(253),
            "n".repeat(63),
            "c".repeat(4096),
        );
        let at_limits = PodText {
            uid: &uid,
            name: &name,
            namespace: &namespace,
            cgroup_path: &path,
            containers: 256,
        };
        assert_eq!(pod(0, &at_limits, &l), Ok(()), "every limit is inclusive");
        let ns = "n".repeat(64);
        let err = |p: PodText<'_>| pod(7, &p, &l).unwrap_err().to_string();
        assert_eq!(
            err(PodText {
                namespace: &ns,
                ..pod_text()
            }),
            "field `pods[7].namespace` is 64 bytes, over the limit of 63"
        );
        assert!(
            err(PodText {
                name: "x\r",
                ..pod_text()
            })
            .starts_with("field `pods[7].name` has a character")
        );
        assert!(
            err(PodText {
                uid: "\u{0}",
                ..pod_text()
            })
            .starts_with("field `pods[7].uid`")
        );
        let long_path = "p".repeat(4097);
        assert!(
            err(PodText {
                cgroup_path: &long_path,
                ..pod_text()
            })
            .starts_with("field `pods[7].cgroup_path` is 4097 bytes")
        );
        assert_eq!(
            err(PodText {
                containers: 257,
                ..pod_text()
            }),
            "field `pods[7].containers` has 257 entries, over the limit of 256"
        );
        assert_eq!(
            err(PodText {
                uid: "",
                cgroup_path: "",
                ..pod_text()
            }),
            "field `pods[7].uid` is required"
        );
        // A workload cgroup has no uid but a path: fine.
        assert_eq!(
            pod(
                0,
                &PodText {
                    uid: "",
                    ..pod_text()
                },
                &l
            ),
            Ok(())
        );
        let c = ContainerText {
            id: "abc",
            name: "trainer",
            image: "img:1",
        };
        assert_eq!(container(1, 2, &c, &l), Ok(()));
        let long_id = "i".repeat(129);
        assert_eq!(
            container(1, 2, &ContainerText { id: &long_id, ..c }, &l)
                .unwrap_err()
                .to_string(),
            "field `pods[1].containers[2].id` is 129 bytes, over the limit of 128"
        );
        assert!(
            container(1, 2, &ContainerText { name: "\n", ..c }, &l)
                .unwrap_err()
                .to_string()
                .starts_with("field `pods[1].containers[2].name`")
        );
        let long_image = "i".repeat(4097);
        assert!(
            container(
                1,
                2,
                &ContainerText {
                    image: &long_image,
                    ..c
                },
                &l
            )
            .is_err()
        );
    }
}
