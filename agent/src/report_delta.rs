//! Stream reports that leave out what the coordinator already has (pure: no I/O, no clock).
//!
//! On one stream the coordinator keeps, per pod and container, the facts (names, paths,
//! images, ...), the `missing` list and the latest slow-cadence values it was sent. A report
//! then carries each of these only when it changed since the previous report on the stream,
//! and says so where it left one out (`facts_unchanged`, `missing_unchanged`,
//! `slow.unchanged`). [`Picture`] is that knowledge: [`Picture::compact`] leaves out what it
//! holds, [`Picture::restore`] puts it back and remembers the result. The first report on a
//! stream is restored in full by the sender (the receiver knows nothing yet).

use crate::cgroup_usage;
use aistor_proto::v1 as pb;
use std::collections::HashMap;

/// What the receiver of a stream knows after the reports so far (only the pods of the latest).
#[derive(Debug, Clone, Default)]
pub struct Picture {
    pods: HashMap<String, PodEntry>,
    /// Counts reports: entries not in the latest one are dropped.
    generation: u64,
}

#[derive(Debug, Clone)]
struct PodEntry {
    facts: PodFacts,
    usage: UsageEntry,
    containers: HashMap<String, ContainerEntry>,
    seen: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct PodFacts {
    name: String,
    namespace: String,
    qos_class: String,
    cgroup_path: String,
    discovered_by: String,
}

#[derive(Debug, Clone)]
struct ContainerEntry {
    facts: ContainerFacts,
    usage: UsageEntry,
    seen: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct ContainerFacts {
    name: String,
    cgroup_path: String,
    pid: Option<u32>,
    state: i32,
    image: String,
}

/// A cgroup's `missing` list and slow part (see [`cgroup_usage::slow_part`], without its
/// reasons) as last sent.
#[derive(Debug, Clone, Default)]
struct UsageEntry {
    missing: Vec<pb::Missing>,
    slow: Option<pb::CgroupUsage>,
}

/// A report left out something the picture does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unknown(pub String);

impl PodFacts {
    fn of(p: &pb::Pod) -> Self {
        Self {
            name: p.name.clone(),
            namespace: p.namespace.clone(),
            qos_class: p.qos_class.clone(),
            cgroup_path: p.cgroup_path.clone(),
            discovered_by: p.discovered_by.clone(),
        }
    }

    fn matches(&self, p: &pb::Pod) -> bool {
        self.name == p.name
            && self.namespace == p.namespace
            && self.qos_class == p.qos_class
            && self.cgroup_path == p.cgroup_path
            && self.discovered_by == p.discovered_by
    }

    fn put(&self, p: &mut pb::Pod) {
        p.name.clone_from(&self.name);
        p.namespace.clone_from(&self.namespace);
        p.qos_class.clone_from(&self.qos_class);
        p.cgroup_path.clone_from(&self.cgroup_path);
        p.discovered_by.clone_from(&self.discovered_by);
    }
}

impl ContainerFacts {
    fn of(c: &pb::Container) -> Self {
        Self {
            name: c.name.clone(),
            cgroup_path: c.cgroup_path.clone(),
            pid: c.pid,
            state: c.state,
            image: c.image.clone(),
        }
    }

    fn matches(&self, c: &pb::Container) -> bool {
        self.name == c.name
            && self.cgroup_path == c.cgroup_path
            && self.pid == c.pid
            && self.state == c.state
            && self.image == c.image
    }

    fn put(&self, c: &mut pb::Container) {
        c.name.clone_from(&self.name);
        c.cgroup_path.clone_from(&self.cgroup_path);
        c.pid = self.pid;
        c.state = self.state;
        c.image.clone_from(&self.image);
    }
}

/// The slow-cadence values of two usages are the same reading with the same values (the
/// `missing` lists are compared apart).
fn same_slow(u: &pb::CgroupUsage, sent: &pb::CgroupUsage) -> bool {
    let (Some(now), Some(then)) = (u.slow, sent.slow) else {
        return false;
    };
    let cpu = |c: Option<&pb::CgroupCpu>| {
        c.map(|c| {
            (
                c.periods_total,
                c.throttled_periods_total,
                c.throttled_nanos_total,
                c.limit_millicores,
            )
        })
    };
    let memory = |m: Option<pb::CgroupMemory>| {
        m.map(|m| pb::CgroupMemory {
            usage_bytes: None,
            ..m
        })
    };
    now.monotonic_nanos == then.monotonic_nanos
        && now.interval_nanos == then.interval_nanos
        && cpu(u.cpu.as_ref()) == cpu(sent.cpu.as_ref())
        && memory(u.memory) == memory(sent.memory)
        && u.io == sent.io
        && u.pressure == sent.pressure
}

impl UsageEntry {
    /// `u` without what this entry already has (nothing when `known` is false: the
    /// receiver has no entry), and the entry updated to `u`.
    fn compact(&mut self, u: &pb::CgroupUsage, known: bool) -> pb::CgroupUsage {
        let pb::CgroupUsage {
            cpu,
            memory,
            io,
            pressure,
            pids_current,
            missing,
            slow,
            missing_unchanged: _,
        } = u;
        let missing_same = known && !missing.is_empty() && *missing == self.missing;
        if !missing_same {
            self.missing.clone_from(missing);
        }
        let slow_same = known && self.slow.as_ref().is_some_and(|s| same_slow(u, s));
        if !slow_same {
            self.slow = slow.is_some().then(|| slow_values(u));
        }
        let mut out = pb::CgroupUsage {
            cpu: *cpu,
            memory: *memory,
            io: None,
            pressure: *pressure,
            pids_current: *pids_current,
            missing: if missing_same {
                Vec::new()
            } else {
                missing.clone()
            },
            slow: *slow,
            missing_unchanged: missing_same,
        };
        if slow_same {
            strip_slow(&mut out);
            out.slow = Some(pb::SlowReading {
                unchanged: true,
                ..Default::default()
            });
        } else {
            out.io.clone_from(io);
        }
        out
    }

    /// Puts back into `u` what a report left out, from `known` (the cgroup's entry, if the
    /// picture has it); `what` names the cgroup for errors.
    fn restore(known: Option<&Self>, u: &mut pb::CgroupUsage, what: &str) -> Result<(), Unknown> {
        let left_out = u.missing_unchanged || u.slow.is_some_and(|s| s.unchanged);
        let Some(known) = known else {
            if left_out {
                return Err(Unknown(format!(
                    "{what}: usage marked unchanged, but the cgroup was not in the previous report"
                )));
            }
            return Ok(());
        };
        if u.missing_unchanged {
            u.missing.clone_from(&known.missing);
            u.missing_unchanged = false;
        }
        if u.slow.is_some_and(|s| s.unchanged) {
            let slow = known.slow.as_ref().ok_or_else(|| {
                Unknown(format!(
                    "{what}: slow values marked unchanged, but none were sent on this stream"
                ))
            })?;
            // The restored missing list already holds the slow reasons.
            let missing = std::mem::take(&mut u.missing);
            cgroup_usage::overlay_slow(u, slow);
            u.missing = missing;
        }
        Ok(())
    }

    /// Takes in a usage as sent (what it left out stays).
    fn follow(&mut self, u: &pb::CgroupUsage) {
        if !u.missing_unchanged {
            self.missing.clone_from(&u.missing);
        }
        if !u.slow.is_some_and(|s| s.unchanged) {
            self.slow = u.slow.is_some().then(|| slow_values(u));
        }
    }

    /// Takes in a usage restored in full.
    fn absorb(&mut self, u: &pb::CgroupUsage) {
        if u.missing != self.missing {
            self.missing.clone_from(&u.missing);
        }
        let same = self.slow.as_ref().is_some_and(|s| same_slow(u, s));
        if !same {
            self.slow = u.slow.is_some().then(|| slow_values(u));
        }
    }
}

/// The slow part of a usage without its reasons (kept apart, in `UsageEntry::missing`).
fn slow_values(u: &pb::CgroupUsage) -> pb::CgroupUsage {
    let mut part = cgroup_usage::slow_part(u);
    part.missing = Vec::new();
    part
}

/// Removes the slow-cadence values of a usage (what [`cgroup_usage::overlay_slow`] puts back).
fn strip_slow(u: &mut pb::CgroupUsage) {
    if let Some(c) = u.cpu.as_mut() {
        c.periods_total = None;
        c.throttled_periods_total = None;
        c.throttled_nanos_total = None;
        c.limit_millicores = None;
    }
    if let Some(m) = u.memory.as_mut() {
        *m = pb::CgroupMemory {
            usage_bytes: m.usage_bytes,
            ..Default::default()
        };
    }
    u.io = None;
    u.pressure = None;
}

impl Picture {
    /// `full` (a report with nothing left out) without what this picture holds, then
    /// remembers `full`: the next report is compacted against it.
    pub fn compact(&mut self, full: &pb::NodeReport) -> pb::NodeReport {
        // Every field named, so that a new one is not left behind unnoticed.
        let pb::NodeReport {
            node,
            agent_instance,
            seq,
            wall_time_unix_nanos,
            monotonic_nanos,
            interval_nanos,
            collect_interval_nanos,
            usage,
            disks,
            pods,
            gpu,
            measurements,
            missing,
            directive_results,
            local_runtime,
            checkpoints,
        } = full;
        self.generation += 1;
        let generation = self.generation;
        let pods = pods
            .iter()
            .map(|p| self.compact_pod(p, generation))
            .collect();
        self.pods.retain(|_, e| e.seen == generation);
        pb::NodeReport {
            node: node.clone(),
            agent_instance: agent_instance.clone(),
            seq: *seq,
            wall_time_unix_nanos: *wall_time_unix_nanos,
            monotonic_nanos: *monotonic_nanos,
            interval_nanos: *interval_nanos,
            collect_interval_nanos: *collect_interval_nanos,
            usage: usage.clone(),
            disks: disks.clone(),
            pods,
            gpu: gpu.clone(),
            measurements: measurements.clone(),
            missing: missing.clone(),
            directive_results: directive_results.clone(),
            local_runtime: local_runtime.clone(),
            checkpoints: checkpoints.clone(),
        }
    }

    fn compact_pod(&mut self, p: &pb::Pod, generation: u64) -> pb::Pod {
        let pb::Pod {
            uid,
            name,
            namespace,
            qos_class,
            cgroup_path,
            usage,
            containers,
            gpus,
            discovered_by,
            frozen,
            facts_unchanged: _,
        } = p;
        let known = self.pods.contains_key(uid);
        if !known {
            let entry = PodEntry {
                facts: PodFacts::of(p),
                usage: UsageEntry::default(),
                containers: HashMap::new(),
                seen: generation,
            };
            self.pods.insert(uid.clone(), entry);
        }
        let Some(entry) = self.pods.get_mut(uid) else {
            unreachable!("inserted above")
        };
        entry.seen = generation;
        let facts_same = known && entry.facts.matches(p);
        if !facts_same {
            entry.facts = PodFacts::of(p);
        }
        let usage = match usage {
            Some(u) => Some(entry.usage.compact(u, known)),
            None => {
                entry.usage = UsageEntry::default();
                None
            }
        };
        let containers = containers
            .iter()
            .map(|c| compact_container(&mut entry.containers, c, generation))
            .collect();
        entry.containers.retain(|_, e| e.seen == generation);
        let text = |s: &String| if facts_same { String::new() } else { s.clone() };
        pb::Pod {
            uid: uid.clone(),
            name: text(name),
            namespace: text(namespace),
            qos_class: text(qos_class),
            cgroup_path: text(cgroup_path),
            usage,
            containers,
            gpus: gpus.clone(),
            discovered_by: text(discovered_by),
            frozen: *frozen,
            facts_unchanged: facts_same,
        }
    }

    /// `report` with everything it left out put back (a report with nothing left out comes
    /// back as it is), and remembered. Errors when the report leaves out something this
    /// picture does not have; the picture is then unchanged.
    pub fn restore(&mut self, report: &pb::NodeReport) -> Result<pb::NodeReport, Unknown> {
        let mut full = report.clone();
        self.fill(&mut full.pods)?;
        self.absorb(&full.pods);
        Ok(full)
    }

    /// Takes in a report as [`Self::restore`] does, without building the full report: what
    /// it left out stays as it is here, the rest replaces it. Errors as `restore` does; the
    /// picture is then unchanged.
    pub fn follow(&mut self, report: &pb::NodeReport) -> Result<(), Unknown> {
        // Checked first, so that an error leaves the picture as it was.
        for p in &report.pods {
            let entry = self.pods.get(&p.uid);
            let what = || format!("pod {:?}", p.uid);
            if entry.is_none() && (p.facts_unchanged || p.usage.as_ref().is_some_and(left_out)) {
                return Err(Unknown(format!(
                    "{}: marked unchanged, but the pod was not in the previous report",
                    what()
                )));
            }
            let slow_flagged = p
                .usage
                .as_ref()
                .is_some_and(|u| u.slow.is_some_and(|s| s.unchanged));
            if slow_flagged && entry.is_some_and(|e| e.usage.slow.is_none()) {
                return Err(Unknown(format!(
                    "{}: slow values marked unchanged, but none were sent on this stream",
                    what()
                )));
            }
            for c in &p.containers {
                let known = entry.and_then(|e| e.containers.get(&c.id));
                let flagged = c.facts_unchanged || c.usage.as_ref().is_some_and(left_out);
                let slow_flagged = c
                    .usage
                    .as_ref()
                    .is_some_and(|u| u.slow.is_some_and(|s| s.unchanged));
                if (known.is_none() && flagged)
                    || (slow_flagged && known.is_some_and(|k| k.usage.slow.is_none()))
                {
                    return Err(Unknown(format!(
                        "{} container {:?}: marked unchanged, but not carried by the previous report",
                        what(),
                        c.id
                    )));
                }
            }
        }
        self.generation += 1;
        let generation = self.generation;
        for p in &report.pods {
            let entry = match self.pods.get_mut(&p.uid) {
                Some(e) => e,
                None => self.pods.entry(p.uid.clone()).or_insert_with(|| PodEntry {
                    facts: PodFacts::of(p),
                    usage: UsageEntry::default(),
                    containers: HashMap::new(),
                    seen: generation,
                }),
            };
            entry.seen = generation;
            if !p.facts_unchanged {
                entry.facts = PodFacts::of(p);
            }
            match &p.usage {
                Some(u) => entry.usage.follow(u),
                None => entry.usage = UsageEntry::default(),
            }
            for c in &p.containers {
                let e = match entry.containers.get_mut(&c.id) {
                    Some(e) => e,
                    None => {
                        entry
                            .containers
                            .entry(c.id.clone())
                            .or_insert_with(|| ContainerEntry {
                                facts: ContainerFacts::of(c),
                                usage: UsageEntry::default(),
                                seen: generation,
                            })
                    }
                };
                e.seen = generation;
                if !c.facts_unchanged {
                    e.facts = ContainerFacts::of(c);
                }
                match &c.usage {
                    Some(u) => e.usage.follow(u),
                    None => e.usage = UsageEntry::default(),
                }
            }
            entry.containers.retain(|_, e| e.seen == generation);
        }
        self.pods.retain(|_, e| e.seen == generation);
        Ok(())
    }

    /// Puts back what the pods left out, from this picture (unchanged).
    fn fill(&self, pods: &mut [pb::Pod]) -> Result<(), Unknown> {
        for pod in pods {
            let entry = self.pods.get(&pod.uid);
            let what = format!("pod {:?}", pod.uid);
            if pod.facts_unchanged {
                let entry = entry.ok_or_else(|| {
                    Unknown(format!(
                        "{what}: facts marked unchanged, but the pod was not in the previous report"
                    ))
                })?;
                entry.facts.put(pod);
                pod.facts_unchanged = false;
            }
            if let Some(u) = pod.usage.as_mut() {
                UsageEntry::restore(entry.map(|e| &e.usage), u, &what)?;
            }
            for c in &mut pod.containers {
                let known = entry.and_then(|e| e.containers.get(&c.id));
                let what = format!("{what} container {:?}", c.id);
                if c.facts_unchanged {
                    let known = known.ok_or_else(|| {
                        Unknown(format!(
                            "{what}: facts marked unchanged, but the container was not in the previous report"
                        ))
                    })?;
                    known.facts.put(c);
                    c.facts_unchanged = false;
                }
                if let Some(u) = c.usage.as_mut() {
                    UsageEntry::restore(known.map(|k| &k.usage), u, &what)?;
                }
            }
        }
        Ok(())
    }

    /// Remembers pods restored in full (only these).
    fn absorb(&mut self, pods: &[pb::Pod]) {
        self.generation += 1;
        let generation = self.generation;
        for p in pods {
            self.absorb_pod(p, generation);
        }
        self.pods.retain(|_, e| e.seen == generation);
    }

    fn absorb_pod(&mut self, p: &pb::Pod, generation: u64) {
        let entry = self.pods.entry(p.uid.clone()).or_insert_with(|| PodEntry {
            facts: PodFacts::of(p),
            usage: UsageEntry::default(),
            containers: HashMap::new(),
            seen: generation,
        });
        entry.seen = generation;
        if !entry.facts.matches(p) {
            entry.facts = PodFacts::of(p);
        }
        match &p.usage {
            Some(u) => entry.usage.absorb(u),
            None => entry.usage = UsageEntry::default(),
        }
        for c in &p.containers {
            let e = entry
                .containers
                .entry(c.id.clone())
                .or_insert_with(|| ContainerEntry {
                    facts: ContainerFacts::of(c),
                    usage: UsageEntry::default(),
                    seen: generation,
                });
            e.seen = generation;
            if !e.facts.matches(c) {
                e.facts = ContainerFacts::of(c);
            }
            match &c.usage {
                Some(u) => e.usage.absorb(u),
                None => e.usage = UsageEntry::default(),
            }
        }
        entry.containers.retain(|_, e| e.seen == generation);
    }

    /// Forgets everything: the next report compacted is sent in full.
    pub fn clear(&mut self) {
        self.pods.clear();
    }
}

/// The usage leaves something out.
fn left_out(u: &pb::CgroupUsage) -> bool {
    u.missing_unchanged || u.slow.is_some_and(|s| s.unchanged)
}

fn compact_container(
    entries: &mut HashMap<String, ContainerEntry>,
    c: &pb::Container,
    generation: u64,
) -> pb::Container {
    let pb::Container {
        id,
        name,
        cgroup_path,
        pid,
        state,
        image,
        usage,
        gpus,
        facts_unchanged: _,
        terminated,
        restart_count,
    } = c;
    let known = entries.contains_key(id);
    if !known {
        let entry = ContainerEntry {
            facts: ContainerFacts::of(c),
            usage: UsageEntry::default(),
            seen: generation,
        };
        entries.insert(id.clone(), entry);
    }
    let Some(entry) = entries.get_mut(id) else {
        unreachable!("inserted above")
    };
    entry.seen = generation;
    let facts_same = known && entry.facts.matches(c);
    if !facts_same {
        entry.facts = ContainerFacts::of(c);
    }
    let usage = match usage {
        Some(u) => Some(entry.usage.compact(u, known)),
        None => {
            entry.usage = UsageEntry::default();
            None
        }
    };
    let text = |s: &String| if facts_same { String::new() } else { s.clone() };
    pb::Container {
        id: id.clone(),
        name: text(name),
        cgroup_path: text(cgroup_path),
        pid: if facts_same { None } else { *pid },
        state: if facts_same { 0 } else { *state },
        image: text(image),
        usage,
        gpus: gpus.clone(),
        facts_unchanged: facts_same,
        // Not among the compacted facts: always sent.
        terminated: terminated.clone(),
        restart_count: *restart_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn usage(cpu_nanos: u64, slow_at: u64, missing: &[(&str, &str)]) -> pb::CgroupUsage {
        pb::CgroupUsage {
            cpu: Some(pb::CgroupCpu {
                usage_nanos_total: Some(cpu_nanos),
                usage_millicores: Some(cpu_nanos as f64 / 1e6),
                limit_millicores: Some(500.0),
                throttled_periods_total: Some(slow_at),
                ..Default::default()
            }),
            memory: Some(pb::CgroupMemory {
                usage_bytes: Some(cpu_nanos * 2),
                working_set_bytes: Some(slow_at * 3),
                limit_bytes: Some(1 << 30),
                ..Default::default()
            }),
            io: Some(pb::CgroupIo {
                rates: Some(pb::IoRates {
                    read_bytes_per_second: slow_at as f64,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            pressure: Some(pb::PressureSet::default()),
            pids_current: Some(4),
            missing: missing
                .iter()
                .map(|(f, r)| pb::Missing {
                    field: (*f).into(),
                    reason: (*r).into(),
                })
                .collect(),
            slow: Some(pb::SlowReading {
                monotonic_nanos: slow_at,
                interval_nanos: Some(10),
                unchanged: false,
            }),
            missing_unchanged: false,
        }
    }

    fn report(seq: u64, slow_at: u64, image: &str) -> pb::NodeReport {
        let missing = [(
            "memory.slab_reclaimable_bytes",
            "cgroup v1 memory.stat has no slab counters",
        )];
        pb::NodeReport {
            seq,
            pods: vec![pb::Pod {
                uid: "u1".into(),
                name: "web".into(),
                namespace: "default".into(),
                qos_class: "burstable".into(),
                cgroup_path: "kubepods/burstable/podu1".into(),
                discovered_by: "containerd".into(),
                usage: Some(usage(seq * 1000, slow_at, &missing)),
                containers: vec![pb::Container {
                    id: "c1".into(),
                    name: "main".into(),
                    cgroup_path: "kubepods/burstable/podu1/c1".into(),
                    pid: Some(42),
                    state: pb::ContainerState::Running as i32,
                    image: image.into(),
                    usage: Some(usage(seq * 10, slow_at + 1, &missing)),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn what_was_sent_is_left_out_and_restored() {
        let mut sender = Picture::default();
        let mut receiver = Picture::default();
        let fulls = [
            report(1, 100, "img:1"),
            report(2, 100, "img:1"),
            report(3, 300, "img:1"),
            report(4, 300, "img:2"),
        ];
        let mut sizes = Vec::new();
        for full in &fulls {
            let compact = sender.compact(full);
            sizes.push(compact.encoded_len());
            assert_eq!(&receiver.restore(&compact).unwrap(), full);
        }
        // The first is sent whole; the second leaves out facts, reasons and slow values.
        let mut fresh = Picture::default();
        let first = fresh.compact(&fulls[0]);
        let c = &fresh.compact(&fulls[1]).pods[0];
        assert!(c.facts_unchanged && c.name.is_empty() && c.cgroup_path.is_empty());
        let u = c.usage.as_ref().unwrap();
        assert!(u.missing_unchanged && u.missing.is_empty());
        assert!(u.slow.unwrap().unchanged);
        assert_eq!(u.memory.unwrap().working_set_bytes, None);
        assert_eq!(u.memory.unwrap().usage_bytes, Some(4000));
        assert_eq!(u.io, None);
        assert!(sizes[1] < sizes[0] / 2, "{sizes:?}");
        // A new slow reading is sent; a changed image is sent.
        assert!(sizes[2] > sizes[1], "{sizes:?}");
        let mut s = Picture::default();
        s.compact(&fulls[2]);
        let changed = s.compact(&fulls[3]);
        assert!(!changed.pods[0].containers[0].facts_unchanged);
        assert_eq!(changed.pods[0].containers[0].image, "img:2");
        assert!(changed.pods[0].facts_unchanged);
        // A fresh picture sends everything.
        assert!(!first.pods[0].facts_unchanged);
    }

    #[test]
    fn restoring_without_the_previous_report_is_an_error() {
        let mut sender = Picture::default();
        sender.compact(&report(1, 100, "i"));
        let compact = sender.compact(&report(2, 100, "i"));
        let err = Picture::default().restore(&compact).unwrap_err();
        assert!(
            err.0.contains("pod \"u1\": facts marked unchanged"),
            "{err}"
        );
        // Facts sent but slow values left out: named too.
        let mut partial = compact.clone();
        partial.pods[0] = report(2, 100, "i").pods[0].clone();
        partial.pods[0].containers[0].usage = compact.pods[0].containers[0].usage.clone();
        let err = Picture::default().restore(&partial).unwrap_err();
        assert!(err.0.contains("container \"c1\""), "{err}");
        // Following (what the replay buffer does as reports leave it) refuses the same.
        let mut p = Picture::default();
        assert!(p.follow(&compact).unwrap_err().0.contains("pod \"u1\""));
        p.follow(&report(1, 100, "i")).unwrap();
        p.follow(&compact).unwrap();
        assert_eq!(
            p.restore(&sender.compact(&report(3, 100, "i"))).unwrap(),
            report(3, 100, "i")
        );
        // A full report restores on any picture, and a removed pod is forgotten.
        let mut p = Picture::default();
        assert_eq!(p.restore(&report(3, 1, "i")).unwrap(), report(3, 1, "i"));
        p.restore(&pb::NodeReport::default()).unwrap();
        assert!(p.restore(&compact).is_err());
    }

    /// Any slow-cadence value that differs, or a different reading time or interval, is sent
    /// again; the same ones are left out (and the fast values always go).
    #[test]
    fn slow_values_are_left_out_only_when_all_of_them_are_the_same() {
        let base = usage(1000, 100, &[]);
        type Change = fn(&mut pb::CgroupUsage);
        let changes: [(&str, Change); 9] = [
            ("reading time", |u| {
                u.slow.as_mut().unwrap().monotonic_nanos += 1
            }),
            ("interval", |u| {
                u.slow.as_mut().unwrap().interval_nanos = None
            }),
            ("periods", |u| {
                u.cpu.as_mut().unwrap().periods_total = Some(9)
            }),
            ("throttled periods", |u| {
                u.cpu.as_mut().unwrap().throttled_periods_total = Some(9)
            }),
            ("throttled nanos", |u| {
                u.cpu.as_mut().unwrap().throttled_nanos_total = Some(9)
            }),
            ("cpu limit", |u| {
                u.cpu.as_mut().unwrap().limit_millicores = None
            }),
            ("working set", |u| {
                u.memory.as_mut().unwrap().working_set_bytes = Some(1)
            }),
            ("io", |u| u.io = None),
            ("pressure", |u| u.pressure = None),
        ];
        for (what, change) in changes {
            let mut entry = UsageEntry::default();
            entry.compact(&base, false);
            let mut next = base.clone();
            change(&mut next);
            let out = entry.compact(&next, true);
            assert!(!out.slow.unwrap().unchanged, "{what}: sent again");
            assert_eq!(out.io, next.io, "{what}");
            // Sent as it is, then left out the next time.
            let again = entry.compact(&next, true);
            assert!(
                again.slow.unwrap().unchanged,
                "{what}: the same again is left out"
            );
        }
        // Fast values only (CPU usage, memory usage) changing: the slow ones are left out,
        // and stripped from what is sent.
        let mut entry = UsageEntry::default();
        entry.compact(&base, false);
        let mut next = usage(2000, 100, &[]);
        next.memory.as_mut().unwrap().usage_bytes = Some(77);
        let out = entry.compact(&next, true);
        let slow = out.slow.unwrap();
        assert!(slow.unchanged);
        assert_eq!((slow.monotonic_nanos, slow.interval_nanos), (0, None));
        let cpu = out.cpu.unwrap();
        assert_eq!(cpu.usage_nanos_total, Some(2000));
        assert_eq!(
            (
                cpu.periods_total,
                cpu.throttled_periods_total,
                cpu.throttled_nanos_total,
                cpu.limit_millicores
            ),
            (None, None, None, None)
        );
        let memory = out.memory.unwrap();
        assert_eq!(memory.usage_bytes, Some(77));
        assert_eq!(
            memory,
            pb::CgroupMemory {
                usage_bytes: Some(77),
                ..Default::default()
            }
        );
        assert_eq!((out.io, out.pressure), (None, None));
        // Unknown to the receiver (`known` false): everything is sent.
        let out = entry.compact(&next, false);
        assert!(!out.slow.unwrap().unchanged && out.io.is_some());
        // No slow reading at all is never "unchanged".
        let mut none = base.clone();
        none.slow = None;
        let mut entry = UsageEntry::default();
        entry.compact(&none, false);
        assert_eq!(entry.compact(&none, true).slow, None);
    }

    /// An empty `missing` list is sent as it is (empty), never as "unchanged".
    #[test]
    fn an_empty_missing_list_is_not_marked_unchanged() {
        let mut entry = UsageEntry::default();
        let u = usage(1, 1, &[]);
        entry.compact(&u, false);
        let out = entry.compact(&u, true);
        assert!(!out.missing_unchanged && out.missing.is_empty());
        let with = usage(1, 1, &[("io.rates", "why")]);
        let out = entry.compact(&with, true);
        assert!(
            !out.missing_unchanged && out.missing.len() == 1,
            "changed: sent"
        );
        let out = entry.compact(&with, true);
        assert!(
            out.missing_unchanged && out.missing.is_empty(),
            "same: left out"
        );
    }

    /// A pod's or a container's facts are left out only when every one of them is the same as
    /// last sent; any that changed sends them all again.
    #[test]
    fn facts_are_left_out_only_when_every_fact_is_the_same() {
        type PodChange = fn(&mut pb::Pod);
        let pod_changes: [PodChange; 5] = [
            |p| p.name.push('x'),
            |p| p.namespace.push('x'),
            |p| p.qos_class.push('x'),
            |p| p.cgroup_path.push('x'),
            |p| p.discovered_by.push('x'),
        ];
        for (i, change) in pod_changes.into_iter().enumerate() {
            let mut sender = Picture::default();
            let mut receiver = Picture::default();
            let first = report(1, 100, "i");
            receiver.restore(&sender.compact(&first)).unwrap();
            let mut next = report(2, 100, "i");
            change(&mut next.pods[0]);
            let sent = sender.compact(&next);
            assert!(!sent.pods[0].facts_unchanged, "pod fact {i}: sent again");
            assert!(sent.pods[0].containers[0].facts_unchanged, "pod fact {i}");
            assert_eq!(receiver.restore(&sent).unwrap(), next, "pod fact {i}");
        }
        type ContainerChange = fn(&mut pb::Container);
        let container_changes: [ContainerChange; 5] = [
            |c| c.name.push('x'),
            |c| c.cgroup_path.push('x'),
            |c| c.pid = Some(43),
            |c| c.state = pb::ContainerState::Stopped as i32,
            |c| c.image.push('x'),
        ];
        for (i, change) in container_changes.into_iter().enumerate() {
            let mut sender = Picture::default();
            let mut receiver = Picture::default();
            receiver
                .restore(&sender.compact(&report(1, 100, "i")))
                .unwrap();
            let mut next = report(2, 100, "i");
            change(&mut next.pods[0].containers[0]);
            let sent = sender.compact(&next);
            let c = &sent.pods[0].containers[0];
            assert!(!c.facts_unchanged, "container fact {i}: sent again");
            assert!(sent.pods[0].facts_unchanged, "container fact {i}");
            assert_eq!(receiver.restore(&sent).unwrap(), next, "container fact {i}");
            // The same again: left out, every fact emptied.
            let mut third = next.clone();
            third.seq = 3;
            let sent = sender.compact(&third);
            let c = &sent.pods[0].containers[0];
            assert!(
                c.facts_unchanged,
                "container fact {i}: the same is left out"
            );
            assert_eq!(
                (
                    c.name.as_str(),
                    c.cgroup_path.as_str(),
                    c.pid,
                    c.state,
                    c.image.as_str()
                ),
                ("", "", None, 0, ""),
            );
            assert_eq!(receiver.restore(&sent).unwrap(), third);
        }
    }

    /// Either "unchanged" flag alone, for a cgroup the picture does not have, is refused by
    /// `restore` and by `follow`; a pod dropped from a report is forgotten; after `clear`
    /// everything is sent again; a changed pod fact is what later reports are compared with.
    #[test]
    fn one_flag_is_enough_to_refuse_and_what_left_is_forgotten() {
        let mut sender = Picture::default();
        sender.compact(&report(1, 100, "i"));
        let compact = sender.compact(&report(2, 100, "i"));
        let mut facts_sent = compact.clone();
        facts_sent.pods[0].facts_unchanged = false;
        facts_sent.pods[0].containers[0].facts_unchanged = false;
        for (what, pod_only) in [
            ("missing", true),
            ("slow", true),
            ("missing", false),
            ("slow", false),
        ] {
            let mut r = facts_sent.clone();
            let usages: Vec<&mut pb::CgroupUsage> = if pod_only {
                r.pods[0].containers.clear();
                vec![r.pods[0].usage.as_mut().unwrap()]
            } else {
                let pod = &mut r.pods[0];
                pod.usage = Some(usage(1, 1, &[]));
                vec![pod.containers[0].usage.as_mut().unwrap()]
            };
            for u in usages {
                u.missing_unchanged = what == "missing";
                u.slow = Some(pb::SlowReading {
                    unchanged: what == "slow",
                    ..Default::default()
                });
            }
            assert!(
                Picture::default().restore(&r).is_err(),
                "{what} {pod_only}: restore"
            );
            assert!(
                Picture::default().follow(&r).is_err(),
                "{what} {pod_only}: follow"
            );
        }
        // A pod that left a report is forgotten: when it comes back it is sent whole, and a
        // report leaving it out no longer follows.
        let mut s = Picture::default();
        s.compact(&report(1, 100, "i"));
        s.compact(&pb::NodeReport::default());
        let back = s.compact(&report(3, 100, "i"));
        assert!(!back.pods[0].facts_unchanged);
        let mut f = Picture::default();
        f.follow(&report(1, 100, "i")).unwrap();
        f.follow(&pb::NodeReport::default()).unwrap();
        assert!(f.follow(&compact).is_err(), "the pod was forgotten");
        // After clear, everything is sent again.
        let mut c = Picture::default();
        c.compact(&report(1, 100, "i"));
        c.clear();
        assert!(!c.compact(&report(2, 100, "i")).pods[0].facts_unchanged);
        // A pod fact changes: the new one is what the next reports are compared with and
        // what the receiver restores.
        let mut sender = Picture::default();
        let mut receiver = Picture::default();
        receiver
            .restore(&sender.compact(&report(1, 100, "i")))
            .unwrap();
        let mut renamed = report(2, 100, "i");
        renamed.pods[0].name = "api".into();
        receiver.restore(&sender.compact(&renamed)).unwrap();
        let mut again = renamed.clone();
        again.seq = 3;
        let sent = sender.compact(&again);
        assert!(sent.pods[0].facts_unchanged, "the new name is known");
        assert_eq!(receiver.restore(&sent).unwrap().pods[0].name, "api");
    }
}
