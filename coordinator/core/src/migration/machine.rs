//! One migration as a state machine. [`step`] takes the stored [`Migration`], the
//! [`World`] as the shell just observed it and the time, and returns the next record and
//! the [`Effect`]s to carry out. The shell stores the record before it carries them out,
//! so every effect is preceded by a stored transition; and since each phase looks at the
//! world (is the target there? is it Ready? is the source frozen?) rather than at what was
//! sent, a coordinator that stops anywhere and starts again on the same store simply
//! steps on: it re-sends what is missing, never what already happened.
//!
//! Make-before-break: measure the source, stage the final checkpoint, freeze the source,
//! create the target, wait for it to be Ready, delete the source, measure the target.
//! The target being Ready is the point of no return; before it, a failure, the timeout or
//! a cancel rolls back (delete the target, thaw the source). Break-before-make (a claim
//! only one node may mount): measure, checkpoint, delete the source, wait for its volumes
//! to be free, create the target; a failure after the source is gone puts the pod back on
//! its source node, restored from the same checkpoint, so no pod is ever lost.
//!
//! A pod a controller owns (Kubernetes: a ReplicaSet's, a StatefulSet's) is not
//! re-created by the migration, which would fight the controller: it is evicted through
//! the Eviction API (its disruption budget may refuse; the eviction is asked again until
//! the timeout), and the controller's replacement (its next pod, not one of the pods it
//! had when the migration started) is held to the target node by a [`Reservation`]
//! that aistor's scheduler honours; the migration then waits for that pod to be Ready.
//! Nothing is rolled back once the source is evicted: the controller keeps the pod
//! count, and its replacement is then placed without the reservation.

use super::plan::{Action, Plan, PlanInput, Refused, Strategy, plan};
use super::target::{Controller, TargetSpec, rollback_pod, target_name, target_pod};
use crate::placement::Reservation;
use serde::{Deserialize, Serialize};
use serde_json::Value;

const SECOND: u64 = 1_000_000_000;
/// How long an action that has not shown its effect waits before it is sent again.
pub const RESEND_AFTER_NANOS: u64 = 5 * SECOND;
/// A checkpoint no report has mentioned for this long is asked for again (the agent
/// restarted and forgot it, or the directive was lost).
pub const STAGE_UNSEEN_AFTER_NANOS: u64 = 30 * SECOND;
/// Attempts at staging a checkpoint before the migration gives up on it.
pub const MAX_STAGE_ATTEMPTS: u32 = 3;
/// A measurement run gets its samples' time plus this before it counts as lost.
pub const MEASURE_SLACK_NANOS: u64 = 60 * SECOND;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Waiting for a free slot (the cap on concurrent migrations).
    Pending,
    MeasuringSource,
    Checkpointing,
    /// A controller-owned source: evicting it (retried while its budget refuses).
    Evicting,
    Freezing,
    CreatingTarget,
    WaitingReady,
    DeletingSource,
    /// Break-before-make: the source is gone; its single-node claims must be released.
    WaitingDetach,
    MeasuringTarget,
    RollingBack,
    Completed,
    Failed,
    Cancelled,
}

impl Phase {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// The status the original API reported: pending, running, completed, failed or
    /// cancelled.
    pub fn status(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            _ => "running",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::MeasuringSource => "measuring_source",
            Self::Checkpointing => "checkpointing",
            Self::Evicting => "evicting",
            Self::Freezing => "freezing",
            Self::CreatingTarget => "creating_target",
            Self::WaitingReady => "waiting_ready",
            Self::DeletingSource => "deleting_source",
            Self::WaitingDetach => "waiting_detach",
            Self::MeasuringTarget => "measuring_target",
            Self::RollingBack => "rolling_back",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What was asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub namespace: String,
    pub pod: String,
    pub source_node: String,
    pub target_node: String,
    /// Stage the pod's checkpoint to the shared volume and restore the target from it.
    pub preserve_pv: bool,
    pub timeout_secs: u64,
    /// Go on without a checkpoint when staging it fails (the containers start cold).
    pub force_restart: bool,
}

/// How a migration measures and retries, fixed when it is created so that a coordinator
/// restarted with other flags does not change a migration under way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Samples of each measurement run; 0: no measurement (the figures are reported
    /// missing, saying so).
    pub measure_samples: u32,
    pub measure_interval_nanos: u64,
    /// Fraction trimmed at each end.
    pub measure_trim: f64,
    /// Wait after the source is gone before the target is measured.
    pub settle_nanos: u64,
    /// Freeze the source through its cgroup freezer before the target starts
    /// (make-before-break).
    pub freeze: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            measure_samples: 20,
            measure_interval_nanos: SECOND,
            measure_trim: 0.1,
            settle_nanos: 15 * SECOND,
            freeze: true,
        }
    }
}

/// A pod's CPU and memory by a measurement run, or why there is none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// The measurement run's id, once started.
    pub id: Option<String>,
    /// Trimmed mean, cores.
    pub cpu_cores: Option<f64>,
    /// Trimmed mean of the working set, bytes.
    pub memory_bytes: Option<u64>,
    pub at_unix_nanos: Option<u64>,
    /// Why a figure is absent.
    pub missing: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// `<migration id>-<attempt>`.
    pub id: String,
    pub attempt: u32,
    pub sent_unix_nanos: u64,
    pub containers: Vec<String>,
    pub staged: Option<Staged>,
    pub error: Option<String>,
}

/// A staged checkpoint as the agent reported it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Staged {
    pub bytes: u64,
    pub files: u64,
    /// The copy, summed over containers.
    pub copy_nanos: u64,
    /// Each container's directory on the checkpoint volume.
    pub dirs: Vec<String>,
}

/// The last effect a phase sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acted {
    pub what: String,
    pub at_unix_nanos: u64,
}

/// One phase as it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub phase: Phase,
    pub started_unix_nanos: u64,
    pub ended_unix_nanos: Option<u64>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollback {
    pub reason: String,
    /// A cancel asked for it: the migration ends cancelled, not failed.
    pub cancelled: bool,
}

/// The source pod as it was when the migration started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub uid: String,
    /// The Pod (JSON), status removed: what the target and a rollback are made from.
    pub pod: Value,
    /// The controller it is evicted through; `None`: the migration re-creates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<Controller>,
    /// The uids of the controller's other pods when the migration started (none of
    /// them is the replacement).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub siblings: Vec<String>,
}

/// One migration, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Migration {
    pub id: String,
    pub request: Request,
    pub settings: Settings,
    pub phase: Phase,
    /// What a person reads: what it is doing or why it ended.
    pub message: String,
    pub error: Option<String>,
    pub created_unix_nanos: u64,
    pub deadline_unix_nanos: u64,
    pub ended_unix_nanos: Option<u64>,
    pub plan: Option<Plan>,
    pub source: Option<Source>,
    pub target_name: String,
    pub target_uid: Option<String>,
    pub checkpoint: Option<Checkpoint>,
    pub before: Measured,
    pub after: Measured,
    pub frozen_unix_nanos: Option<u64>,
    /// When this migration first asked for the source to be deleted.
    pub source_deleted_unix_nanos: Option<u64>,
    pub target_ready_unix_nanos: Option<u64>,
    /// The effect the current phase last sent, and when (reset by every transition).
    pub acted: Option<Acted>,
    pub steps: Vec<StepRecord>,
    pub cancel_requested: bool,
    pub rollback: Option<Rollback>,
    /// Why the last eviction was refused (a disruption budget), while it is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_refused: Option<String>,
}

impl Migration {
    /// A new migration, pending.
    pub fn new(id: String, request: Request, settings: Settings, now: u64) -> Self {
        let timeout = if request.timeout_secs == 0 {
            600
        } else {
            request.timeout_secs
        };
        let target_name = target_name(&request.pod, &id);
        Self {
            id,
            deadline_unix_nanos: now.saturating_add(timeout.saturating_mul(SECOND)),
            request,
            settings,
            phase: Phase::Pending,
            message: "Migration started".into(),
            error: None,
            created_unix_nanos: now,
            ended_unix_nanos: None,
            plan: None,
            source: None,
            target_name,
            target_uid: None,
            checkpoint: None,
            before: Measured::default(),
            after: Measured::default(),
            frozen_unix_nanos: None,
            source_deleted_unix_nanos: None,
            target_ready_unix_nanos: None,
            acted: None,
            steps: vec![StepRecord {
                phase: Phase::Pending,
                started_unix_nanos: now,
                ended_unix_nanos: None,
                message: "Migration started".into(),
            }],
            cancel_requested: false,
            rollback: None,
            eviction_refused: None,
        }
    }

    /// The status the original API reported.
    pub fn status(&self) -> &'static str {
        self.phase.status()
    }

    pub fn strategy(&self) -> Option<&Strategy> {
        self.plan.as_ref().map(|p| &p.strategy)
    }

    /// The controller the source is evicted through, if it is.
    pub fn controller(&self) -> Option<&Controller> {
        self.source.as_ref()?.controller.as_ref()
    }

    /// The node this migration holds for its controller's replacement pod: from the
    /// eviction until it ends, unless it is rolling back.
    pub fn reservation(&self) -> Option<Reservation> {
        let controller = self.controller()?;
        matches!(
            self.phase,
            Phase::Evicting | Phase::WaitingReady | Phase::MeasuringTarget
        )
        .then(|| Reservation {
            migration_id: self.id.clone(),
            namespace: self.request.namespace.clone(),
            owner_uid: controller.uid.clone(),
            node: self.request.target_node.clone(),
        })
    }

    fn break_before_make(&self) -> bool {
        matches!(self.strategy(), Some(Strategy::BreakBeforeMake { .. }))
    }

    /// Downtime: from the source's stop (frozen, or its deletion asked for) until the
    /// target was Ready.
    pub fn downtime_nanos(&self) -> Option<u64> {
        let stopped = self.frozen_unix_nanos.or(self.source_deleted_unix_nanos)?;
        Some(self.target_ready_unix_nanos?.saturating_sub(stopped))
    }

    /// From the start of the migration to the target's Ready.
    pub fn time_to_resume_nanos(&self) -> Option<u64> {
        Some(
            self.target_ready_unix_nanos?
                .saturating_sub(self.created_unix_nanos),
        )
    }

    /// The staged checkpoint on the volume, `<dir>/<ns>/<pod>/<id>`: the parent of its
    /// containers' directories.
    pub fn checkpoint_dir(&self) -> Option<String> {
        let staged = self.checkpoint.as_ref()?.staged.as_ref()?;
        let first = std::path::Path::new(staged.dirs.first()?);
        Some(first.parent()?.display().to_string())
    }

    /// The measurement the current phase waits for.
    pub fn current_measurement(&self) -> Option<&Measured> {
        match self.phase {
            Phase::MeasuringSource => Some(&self.before),
            Phase::MeasuringTarget => Some(&self.after),
            _ => None,
        }
    }

    /// Records the id of the measurement run the current phase started.
    pub fn measurement_started(&mut self, id: String) {
        match self.phase {
            Phase::MeasuringSource => self.before.id = Some(id),
            Phase::MeasuringTarget => self.after.id = Some(id),
            _ => {}
        }
    }

    /// Asks for a cancel; `Err` says why it is too late.
    pub fn cancel(&mut self) -> Result<(), String> {
        if self.phase.is_final() {
            return Err(format!(
                "migration {} has already {}",
                self.id,
                self.phase.status()
            ));
        }
        if self.committed() {
            return Err(format!(
                "migration {} is past the point of no return ({}): the target is running",
                self.id,
                self.phase.as_str()
            ));
        }
        self.cancel_requested = true;
        Ok(())
    }

    /// Past the point of no return: the target was Ready (and, make-before-break, the
    /// source is being deleted).
    fn committed(&self) -> bool {
        self.target_ready_unix_nanos.is_some()
    }

    fn enter(&mut self, phase: Phase, now: u64, message: impl Into<String>) {
        let message = message.into();
        if let Some(last) = self.steps.last_mut()
            && last.ended_unix_nanos.is_none()
        {
            last.ended_unix_nanos = Some(now);
        }
        self.steps.push(StepRecord {
            phase,
            started_unix_nanos: now,
            ended_unix_nanos: phase.is_final().then_some(now),
            message: message.clone(),
        });
        self.phase = phase;
        self.message = message;
        self.acted = None;
        if phase.is_final() {
            self.ended_unix_nanos = Some(now);
        }
    }

    fn fail(&mut self, now: u64, error: impl Into<String>) {
        let error = error.into();
        self.error = Some(error.clone());
        self.enter(Phase::Failed, now, error);
    }

    fn roll_back(&mut self, now: u64, reason: impl Into<String>, cancelled: bool) {
        let reason = reason.into();
        self.rollback = Some(Rollback {
            reason: reason.clone(),
            cancelled,
        });
        self.enter(Phase::RollingBack, now, format!("rolling back: {reason}"));
    }

    /// Whether effect `what` is due: not the last one sent in this phase, or sent
    /// [`RESEND_AFTER_NANOS`] ago without showing. Marks it sent when it is.
    fn due(&mut self, now: u64, what: &str) -> bool {
        let due = self.acted.as_ref().is_none_or(|a| {
            a.what != what || now.saturating_sub(a.at_unix_nanos) >= RESEND_AFTER_NANOS
        });
        if due {
            self.acted = Some(Acted {
                what: what.to_owned(),
                at_unix_nanos: now,
            });
        }
        due
    }

    fn phase_started(&self) -> u64 {
        self.steps
            .last()
            .map_or(self.created_unix_nanos, |s| s.started_unix_nanos)
    }

    /// How long the current phase's measurement may take (the settle delay included).
    fn measure_budget(&self) -> u64 {
        let settle = if self.phase == Phase::MeasuringTarget {
            self.settings.settle_nanos
        } else {
            0
        };
        u64::from(self.settings.measure_samples)
            .saturating_add(1)
            .saturating_mul(self.settings.measure_interval_nanos)
            .saturating_add(MEASURE_SLACK_NANOS)
            .saturating_add(settle)
    }
}

/// The target node as the live view sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeSeen {
    Ready,
    Stale,
    Unknown,
}

/// A pod as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSeen {
    pub uid: String,
    pub node: Option<String>,
    pub ready: bool,
    pub frozen: bool,
    /// Being deleted.
    pub terminating: bool,
    /// Why it cannot become Ready (a container that failed, an image that cannot be
    /// pulled, a restore that failed); `None` while it still may.
    pub failed: Option<String>,
    /// The Pod as JSON (spec and metadata; status is ignored).
    pub object: Value,
    /// The planner's view of it (`checkpoint_staged` is decided by the machine).
    pub plan_input: PlanInput,
    /// The controller the runtime evicts it through (`None`: the migration moves it).
    pub controller: Option<Controller>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckpointSeen {
    /// No report mentioned it (yet).
    Unknown,
    InProgress {
        bytes: u64,
    },
    Staged(Staged),
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum MeasurementSeen {
    Unknown,
    Running,
    Done {
        cpu_cores: Option<f64>,
        memory_bytes: Option<u64>,
        at_unix_nanos: u64,
        /// Why a figure is absent.
        missing: Option<String>,
    },
    Failed(String),
}

/// Everything [`step`] looks at, observed by the shell just before.
#[derive(Debug, Clone, PartialEq)]
pub struct World {
    /// A slot under the cap on concurrent migrations is free for this one.
    pub slot_free: bool,
    /// The pod named in the request (whatever its uid).
    pub source: Option<PodSeen>,
    /// The pod named [`Migration::target_name`]; for a controller-owned source, the
    /// controller's replacement: a pod it controls that is neither the source nor one
    /// of [`Source::siblings`].
    pub target: Option<PodSeen>,
    /// The uids of the other pods the source's controller controls now (read when the
    /// migration starts).
    pub siblings: Vec<String>,
    /// Why the last eviction of the source was refused, if it was.
    pub eviction_refused: Option<String>,
    pub target_node: NodeSeen,
    /// The source's containers that mount its checkpoint path.
    pub checkpointed: Vec<String>,
    /// The staging of [`Migration::checkpoint`].
    pub checkpoint: CheckpointSeen,
    /// The run of [`Migration::current_measurement`].
    pub measurement: MeasurementSeen,
    /// What the agent said of the last freeze or thaw, when it failed.
    pub freeze_error: Option<String>,
    /// The source's single-node claims are mounted nowhere.
    pub claims_detached: bool,
}

/// What the shell carries out, each idempotent or guarded by a uid.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Start a measurement run of `pod` on `node`; report its id with
    /// [`Migration::measurement_started`].
    Measure {
        namespace: String,
        pod: String,
        node: String,
        samples: u32,
        interval_nanos: u64,
        trim: f64,
    },
    StageCheckpoint {
        checkpoint_id: String,
        pod_uid: String,
        node: String,
        containers: Vec<String>,
    },
    Freeze {
        pod_uid: String,
        node: String,
        frozen: bool,
    },
    CreatePod {
        namespace: String,
        node: String,
        pod: Value,
    },
    /// Delete the pod if it still has this uid.
    DeletePod {
        namespace: String,
        name: String,
        uid: String,
    },
    /// Evict the pod through the Eviction API if it still has this uid (its
    /// disruption budget may refuse: [`World::eviction_refused`]).
    Evict {
        namespace: String,
        name: String,
        uid: String,
    },
}

/// One step: the next record and what to do.
pub fn step(m: &Migration, w: &World, now: u64) -> (Migration, Vec<Effect>) {
    let mut n = m.clone();
    let effects = match m.phase {
        Phase::Completed | Phase::Failed | Phase::Cancelled => Vec::new(),
        Phase::Pending => pending(&mut n, w, now),
        Phase::RollingBack => rolling_back(&mut n, w, now),
        Phase::MeasuringTarget => measuring_target(&mut n, w, now),
        Phase::DeletingSource if !m.break_before_make() => deleting_source(&mut n, w, now),
        _ => match guard(&n, now) {
            Some((reason, cancelled)) => {
                n.roll_back(now, reason, cancelled);
                rolling_back(&mut n, w, now)
            }
            None => match m.phase {
                Phase::MeasuringSource => measuring_source(&mut n, w, now),
                Phase::Checkpointing => checkpointing(&mut n, w, now),
                Phase::Evicting => evicting(&mut n, w, now),
                Phase::Freezing => freezing(&mut n, w, now),
                Phase::DeletingSource => deleting_source(&mut n, w, now),
                Phase::WaitingDetach => waiting_detach(&mut n, w, now),
                Phase::CreatingTarget => creating_target(&mut n, w, now),
                Phase::WaitingReady => waiting_ready(&mut n, w, now),
                _ => Vec::new(),
            },
        },
    };
    (n, effects)
}

/// A cancel or the timeout, before the point of no return.
fn guard(m: &Migration, now: u64) -> Option<(String, bool)> {
    if m.cancel_requested {
        return Some(("cancelled on request".into(), true));
    }
    (now >= m.deadline_unix_nanos).then(|| {
        (
            format!(
                "timed out after {} s while {}",
                m.deadline_unix_nanos.saturating_sub(m.created_unix_nanos) / SECOND,
                m.phase.as_str()
            ),
            false,
        )
    })
}

fn pending(n: &mut Migration, w: &World, now: u64) -> Vec<Effect> {
    if n.cancel_requested {
        n.enter(Phase::Cancelled, now, "cancelled before it started");
        return Vec::new();
    }
    if now >= n.deadline_unix_nanos {
        n.fail(now, "timed out waiting for a free migration slot");
        return Vec::new();
    }
    if !w.slot_free {
        n.message = "waiting for a free migration slot".into();
        return Vec::new();
    }
    let r = &n.request;
    let Some(source) = &w.source else {
        let error = format!("pod {}/{} not found", r.namespace, r.pod);
        n.fail(now, error);
        return Vec::new();
    };
    if source.node.as_deref() != Some(r.source_node.as_str()) {
        let error = format!(
            "pod {}/{} is on node {}, not on {}",
            r.namespace,
            r.pod,
            source.node.as_deref().unwrap_or("(none)"),
            r.source_node
        );
        n.fail(now, error);
        return Vec::new();
    }
    if w.target_node != NodeSeen::Ready {
        let state = if w.target_node == NodeSeen::Stale {
            "stale"
        } else {
            "unknown"
        };
        let error = format!("target node {} is {state}", r.target_node);
        n.fail(now, error);
        return Vec::new();
    }
    let checkpointing = r.preserve_pv && !w.checkpointed.is_empty();
    let input = PlanInput {
        checkpoint_staged: checkpointing,
        ..source.plan_input.clone()
    };
    let planned = match plan(&input) {
        Ok(p) => p,
        Err(refused) => {
            n.fail(now, refused_message(&refused));
            return Vec::new();
        }
    };
    let mut planned = planned;
    for c in planned
        .containers
        .iter_mut()
        .filter(|c| c.action == Action::Restore && !w.checkpointed.contains(&c.name))
    {
        c.action = Action::Recreate;
        c.why = "running; it mounts no checkpoint path, so it is re-created".into();
    }
    n.plan = Some(planned);
    let mut pod = source.object.clone();
    if let Some(object) = pod.as_object_mut() {
        object.remove("status");
    }
    let siblings = match &source.controller {
        Some(_) => {
            // The controller makes the new pod, under a name of its own.
            n.target_name = String::new();
            w.siblings
                .iter()
                .filter(|u| **u != source.uid)
                .cloned()
                .collect()
        }
        None => Vec::new(),
    };
    n.source = Some(Source {
        uid: source.uid.clone(),
        pod,
        controller: source.controller.clone(),
        siblings,
    });
    if checkpointing {
        n.checkpoint = Some(Checkpoint {
            id: format!("{}-1", n.id),
            attempt: 1,
            sent_unix_nanos: 0,
            containers: w.checkpointed.clone(),
            staged: None,
            error: None,
        });
    }
    if n.settings.measure_samples == 0 {
        n.before.missing = Some("not measured: measurement runs are off".into());
        return after_measuring_source(n, w, now);
    }
    n.enter(Phase::MeasuringSource, now, "measuring the source pod");
    measuring_source(n, w, now)
}

fn refused_message(refused: &Refused) -> String {
    format!("nothing to migrate: {refused}")
}

enum Measuring {
    Wait,
    Send(Effect),
    Done(Measured),
}

/// Starts or follows the current phase's measurement run of `pod` on `node`.
fn measure(n: &mut Migration, w: &World, now: u64, pod: &str, node: &str) -> Measuring {
    let current = n.current_measurement().cloned().unwrap_or_default();
    let missing = |why: String| Measured {
        missing: Some(format!("not measured: {why}")),
        ..current.clone()
    };
    match &w.measurement {
        MeasurementSeen::Done {
            cpu_cores,
            memory_bytes,
            at_unix_nanos,
            missing,
        } => Measuring::Done(Measured {
            id: current.id.clone(),
            cpu_cores: *cpu_cores,
            memory_bytes: *memory_bytes,
            at_unix_nanos: Some(*at_unix_nanos),
            missing: missing.clone(),
        }),
        MeasurementSeen::Failed(reason) => Measuring::Done(missing(reason.clone())),
        _ if now.saturating_sub(n.phase_started()) > n.measure_budget() => {
            Measuring::Done(missing(format!(
                "the measurement run gave no result within {} s",
                n.measure_budget() / SECOND
            )))
        }
        MeasurementSeen::Running => Measuring::Wait,
        MeasurementSeen::Unknown => match &current.id {
            Some(id) => Measuring::Done(missing(format!("measurement run {id} is unknown"))),
            // Never started, or started and not recorded before the coordinator stopped:
            // (again) once the resend interval says the first is not coming.
            None if n.due(now, "measure") => Measuring::Send(Effect::Measure {
                namespace: n.request.namespace.clone(),
                pod: pod.to_owned(),
                node: node.to_owned(),
                samples: n.settings.measure_samples,
                interval_nanos: n.settings.measure_interval_nanos,
                trim: n.settings.measure_trim,
            }),
            None => Measuring::Wait,
        },
    }
}

fn source_gone(n: &Migration, w: &World) -> bool {
    let uid = n.source.as_ref().map(|s| s.uid.as_str());
    w.source
        .as_ref()
        .is_none_or(|s| Some(s.uid.as_str()) != uid)
}

fn measuring_source(n: &mut Migration, w: &World, now: u64) -> Vec<Effect> {
    if source_gone(n, w) {
        n.fail(now, "the source pod was deleted during the migration");
        return Vec::new();
    }
    let (pod, node) = (n.request.pod.clone(), n.request.source_node.clone());
    match measure(n, w, now, &pod, &node) {
        Measuring::Wait => Vec::new(),
        Measuring::Send(effect) => vec![effect],
        Measuring::Done(measured) => {
            n.before = measured;
            after_measuring_source(n, w, now)
        }
    }
}

fn after_measuring_source(n: &mut Migration, w: &World, now: u64) -> Vec<Effect> {
    if n.checkpoint.is_some() {
        n.enter(
            Phase::Checkpointing,
            now,
            "staging the checkpoint to the shared volume",
        );
        return checkpointing(n, w, now);
    }
    after_checkpoint(n, w, now)
}

fn after_checkpoint(n: &mut Migration, w: &World, now: u64) -> Vec<Effect> {
    if let Some(c) = n.controller() {
        let message = format!(
            "evicting the source; its controller {}/{} makes the replacement",
            c.kind, c.name
        );
        n.enter(Phase::Evicting, now, message);
        return evicting(n, w, now);
    }
    if n.break_before_make() {
        n.enter(
            Phase::DeletingSource,
            now,
            "deleting the source (its claims can be mounted by one node at a time)",
        );
        return deleting_source(n, w, now);
    }
    if n.settings.freeze {
        n.enter(Phase::Freezing, now, "freezing the source's containers");
        return freezing(n, w, now);
    }
    n.enter(Phase::CreatingTarget, now, "creating the target pod");
    creating_target(n, w, now)
}

fn checkpointing(n: &mut Migration, w: &World, now: u64) -> Vec<Effect> {
    if source_gone(n, w) {
        n.fail(now, "the source pod was deleted during the migration");
        return Vec::new();
    }
    let Some(mut checkpoint) = n.checkpoint.clone() else {
        return after_checkpoint(n, w, now);
    };
    let failed = match &w.checkpoint {
        // Never sent (the record says so, and it is stored with what it sends).
        _ if checkpoint.sent_unix_nanos == 0 => None,
        CheckpointSeen::Staged(staged) => {
            checkpoint.staged = Some(staged.clone());
            n.checkpoint = Some(checkpoint);
            return after_checkpoint(n, w, now);
        }
        CheckpointSeen::InProgress { .. } => return Vec::new(),
        CheckpointSeen::Failed(reason) => Some(reason.clone()),
        CheckpointSeen::Unknown
            if now.saturating_sub(checkpoint.sent_unix_nanos) < STAGE_UNSEEN_AFTER_NANOS =>
        {
            return Vec::new();
        }
        CheckpointSeen::Unknown if checkpoint.attempt >= MAX_STAGE_ATTEMPTS => Some(format!(
            "no report mentioned it in {} attempts",
            checkpoint.attempt
        )),
        CheckpointSeen::Unknown => {
            checkpoint.attempt += 1;
            checkpoint.id = format!("{}-{}", n.id, checkpoint.attempt);
            None
        }
    };
    if let Some(reason) = failed {
        let error = format!("checkpoint {} failed: {reason}", checkpoint.id);
        if !n.request.force_restart {
            n.checkpoint = Some(Checkpoint {
                error: Some(error.clone()),
                ..checkpoint
            });
            n.roll_back(now, error, false);
            return rolling_back(n, w, now);
        }
        // force_restart: go on; what would have been restored starts cold.
        if let Some(plan) = &mut n.plan {
            for c in plan
                .containers
                .iter_mut()
                .filter(|c| c.action == Action::Restore)
            {
                c.action = Action::Recreate;
                c.why = "running; its checkpoint failed, so it starts cold (force_restart)".into();
            }
        }
        n.checkpoint = Some(Checkpoint {
            error: Some(error),
            ..checkpoint
        });
        return after_checkpoint(n, w, now);
    }
    checkpoint.sent_unix_nanos = now;
    let effect = Effect::StageCheckpoint {
        checkpoint_id: checkpoint.id.clone(),
        pod_uid: n.source.as_ref().map(|s| s.uid.clone()).unwrap_or_default(),
        node: n.request.source_node.clone(),
        containers: checkpoint.containers.clone(),
    };
    n.checkpoint = Some(checkpoint);
    vec![effect]
}

fn evicting(n: &mut Migration, w: &World, now: u64) -> Vec<Effect> {
    if source_gone(n, w) || w.source.as_ref().is_some_and(|s| s.terminating) {
        n.source_deleted_unix_nanos = n.source_deleted_unix_nanos.or(Some(now));
        n.eviction_refused = None;
        let message = format!(
            "the source was evicted; waiting for its controller's replacement to be Ready on {}",
            n.request.target_node
        );
        n.enter(Phase::WaitingReady, now, message);
        return waiting_ready(n, w, now);
    }
    if let Some(reason) = &w.eviction_refused
        && n.eviction_refused.as_ref() != Some(reason)
    {
        n.eviction_refused = Some(reason.clone());
        n.message = format!("the eviction was refused; asking again until the timeout: {reason}");
    }
    if !n.due(now, "evict") {
        return Vec::new();
    }
    vec![Effect::Evict {
        namespace: n.request.namespace.clone(),
        name: n.request.pod.clone(),
        uid: n.source.as_ref().map(|s| s.uid.clone()).unwrap_or_default(),
    }]
}

fn freezing(n: &mut Migration, w: &World, now: u64) -> Vec<Effect> {
    if source_gone(n, w) {
        n.fail(now, "the source pod was deleted during the migration");
        return Vec::new();
    }
    if w.source.as_ref().is_some_and(|s| s.frozen) {
        n.frozen_unix_nanos = Some(now);
        n.enter(Phase::CreatingTarget, now, "creating the target pod");
        return creating_target(n, w, now);
    }
    if let Some(error) = &w.freeze_error {
        let reason = format!("the source could not be frozen: {error}");
        n.roll_back(now, reason, false);
        return rolling_back(n, w, now);
    }
    if n.due(now, "freeze") {
        return vec![freeze(n, true)];
    }
    Vec::new()
}

fn freeze(n: &Migration, frozen: bool) -> Effect {
    Effect::Freeze {
        pod_uid: n.source.as_ref().map(|s| s.uid.clone()).unwrap_or_default(),
        node: n.request.source_node.clone(),
        frozen,
    }
}

fn restore_from(n: &Migration) -> Option<String> {
    let restores = n.plan.as_ref().is_some_and(super::target::restores);
    n.checkpoint
        .as_ref()
        .filter(|c| c.staged.is_some() && restores)
        .map(|c| c.id.clone())
}

fn creating_target(n: &mut Migration, w: &World, now: u64) -> Vec<Effect> {
    if let Some(target) = &w.target {
        n.target_uid = Some(target.uid.clone());
        n.enter(
            Phase::WaitingReady,
            now,
            format!("waiting for the target pod {} to be Ready", n.target_name),
        );
        return waiting_ready(n, w, now);
    }
    if w.target_node != NodeSeen::Ready || !n.due(now, "create target") {
        return Vec::new();
    }
    let (Some(source), Some(plan)) = (&n.source, &n.plan) else {
        n.fail(now, "the stored migration has no source or plan");
        return Vec::new();
    };
    let restore = restore_from(n);
    let pod = target_pod(
        &source.pod,
        plan,
        TargetSpec {
            migration_id: &n.id,
            name: &n.target_name,
            node: &n.request.target_node,
            restore_from: restore.as_deref(),
        },
    );
    vec![Effect::CreatePod {
        namespace: n.request.namespace.clone(),
        node: n.request.target_node.clone(),
        pod,
    }]
}

fn waiting_ready(n: &mut Migration, w: &World, now: u64) -> Vec<Effect> {
    if n.controller().is_some() {
        // Until the controller makes its pod there is nothing to wait on but it.
        let Some(target) = &w.target else {
            return Vec::new();
        };
        if n.target_uid.as_deref() != Some(target.uid.as_str()) {
            n.target_uid = Some(target.uid.clone());
            n.target_name = target.object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
        }
    }
    let Some(target) = &w.target else {
        let reason = format!("the target pod {} disappeared", n.target_name);
        n.roll_back(now, reason, false);
        return rolling_back(n, w, now);
    };
    if let Some(reason) = &target.failed {
        let reason = format!("the target pod {} failed: {reason}", n.target_name);
        n.roll_back(now, reason, false);
        return rolling_back(n, w, now);
    }
    if !target.ready {
        return Vec::new();
    }
    n.target_ready_unix_nanos = Some(now);
    if n.break_before_make() || n.controller().is_some() {
        return enter_measuring_target(n, w, now);
    }
    n.enter(
        Phase::DeletingSource,
        now,
        "the target is Ready; deleting the source",
    );
    deleting_source(n, w, now)
}

fn deleting_source(n: &mut Migration, w: &World, now: u64) -> Vec<Effect> {
    // Make-before-break: the target runs, the source is frozen; one being deleted is
    // as good as gone. Break-before-make: its claims are free only once it is gone.
    let gone = source_gone(n, w)
        || (!n.break_before_make() && w.source.as_ref().is_some_and(|s| s.terminating));
    if gone {
        if n.break_before_make() {
            n.enter(
                Phase::WaitingDetach,
                now,
                "waiting for the source's claims to be released",
            );
            return waiting_detach(n, w, now);
        }
        return enter_measuring_target(n, w, now);
    }
    if !n.due(now, "delete source") {
        return Vec::new();
    }
    n.source_deleted_unix_nanos = n.source_deleted_unix_nanos.or(Some(now));
    vec![Effect::DeletePod {
        namespace: n.request.namespace.clone(),
        name: n.request.pod.clone(),
        uid: n.source.as_ref().map(|s| s.uid.clone()).unwrap_or_default(),
    }]
}

fn waiting_detach(n: &mut Migration, w: &World, now: u64) -> Vec<Effect> {
    if !w.claims_detached {
        return Vec::new();
    }
    n.enter(Phase::CreatingTarget, now, "creating the target pod");
    creating_target(n, w, now)
}

fn enter_measuring_target(n: &mut Migration, w: &World, now: u64) -> Vec<Effect> {
    if n.settings.measure_samples == 0 {
        n.after.missing = Some("not measured: measurement runs are off".into());
        n.enter(Phase::Completed, now, "Migration completed");
        return Vec::new();
    }
    n.enter(
        Phase::MeasuringTarget,
        now,
        "measuring the target pod after the settle delay",
    );
    measuring_target(n, w, now)
}

fn measuring_target(n: &mut Migration, w: &World, now: u64) -> Vec<Effect> {
    if now.saturating_sub(n.phase_started()) < n.settings.settle_nanos {
        return Vec::new();
    }
    let (pod, node) = (n.target_name.clone(), n.request.target_node.clone());
    let outcome = if w.target.is_none() {
        Measuring::Done(Measured {
            missing: Some(format!(
                "not measured: the target pod {} is gone",
                n.target_name
            )),
            ..n.after.clone()
        })
    } else {
        measure(n, w, now, &pod, &node)
    };
    match outcome {
        Measuring::Wait => Vec::new(),
        Measuring::Send(effect) => vec![effect],
        Measuring::Done(measured) => {
            n.after = measured;
            n.enter(Phase::Completed, now, "Migration completed");
            Vec::new()
        }
    }
}

/// Undoes what was done, in the order that never leaves two copies running and never
/// loses the pod: the target goes first; then a frozen source is thawed, or a source
/// this migration deleted is put back on its node from the checkpoint.
fn rolling_back(n: &mut Migration, w: &World, now: u64) -> Vec<Effect> {
    let Some(rollback) = n.rollback.clone() else {
        n.fail(now, "rolling back without a reason on record");
        return Vec::new();
    };
    if n.controller().is_some() {
        // The controller's pods are its own: nothing to delete, nothing to put back.
        let outcome = if n.source_deleted_unix_nanos.is_some() {
            "; the source was evicted: its controller's replacement is placed without the reservation"
        } else {
            "; the source was not evicted"
        };
        let refused = n
            .eviction_refused
            .as_ref()
            .map(|r| format!(" (the last eviction was refused: {r})"))
            .unwrap_or_default();
        let message = format!("{}{refused}{outcome}", rollback.reason);
        if rollback.cancelled {
            n.enter(Phase::Cancelled, now, message);
        } else {
            n.fail(now, message);
        }
        return Vec::new();
    }
    if let Some(target) = &w.target {
        if !n.due(now, "delete target") {
            return Vec::new();
        }
        return vec![Effect::DeletePod {
            namespace: n.request.namespace.clone(),
            name: n.target_name.clone(),
            uid: target.uid.clone(),
        }];
    }
    let mut outcome = String::new();
    match &w.source {
        // Deleted on our request and not gone yet: put it back once it is.
        Some(source)
            if !source_gone(n, w)
                && source.terminating
                && n.source_deleted_unix_nanos.is_some() =>
        {
            return Vec::new();
        }
        Some(source) if !source_gone(n, w) => {
            if source.frozen {
                if n.due(now, "thaw") {
                    return vec![freeze(n, false)];
                }
                return Vec::new();
            }
            if n.frozen_unix_nanos.is_some() {
                outcome = "; the source was thawed".into();
            }
        }
        Some(_) if n.source_deleted_unix_nanos.is_some() => {
            outcome = format!(
                "; the pod was put back on {} as it was",
                n.request.source_node
            );
        }
        Some(_) => outcome = "; the source pod was replaced outside the migration".into(),
        None if n.source_deleted_unix_nanos.is_some() => {
            if !w.claims_detached || !n.due(now, "put back") {
                return Vec::new();
            }
            let (Some(source), Some(plan)) = (&n.source, &n.plan) else {
                n.fail(now, "the stored migration has no source or plan");
                return Vec::new();
            };
            let restore = restore_from(n);
            return vec![Effect::CreatePod {
                namespace: n.request.namespace.clone(),
                node: n.request.source_node.clone(),
                pod: rollback_pod(
                    &source.pod,
                    plan,
                    &n.id,
                    &n.request.source_node,
                    restore.as_deref(),
                ),
            }];
        }
        None => outcome = "; the source pod was deleted outside the migration".into(),
    }
    let message = format!("{}{outcome}", rollback.reason);
    if rollback.cancelled {
        n.enter(Phase::Cancelled, now, message);
    } else {
        n.fail(now, message);
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::plan::{ContainerInput, ContainerState, RestartPolicy};
    use serde_json::json;

    const S: u64 = SECOND;
    const T0: u64 = 1_000 * S;

    fn request(preserve_pv: bool) -> Request {
        Request {
            namespace: "ai".into(),
            pod: "tf".into(),
            source_node: "w1".into(),
            target_node: "w2".into(),
            preserve_pv,
            timeout_secs: 300,
            force_restart: false,
        }
    }

    fn settings(samples: u32) -> Settings {
        Settings {
            measure_samples: samples,
            measure_interval_nanos: S,
            measure_trim: 0.1,
            settle_nanos: 5 * S,
            freeze: true,
        }
    }

    fn pod(name: &str, uid: &str, node: &str) -> PodSeen {
        PodSeen {
            uid: uid.into(),
            node: Some(node.into()),
            ready: true,
            frozen: false,
            terminating: false,
            failed: None,
            object: json!({
                "metadata": {"name": name, "namespace": "ai", "uid": uid},
                "spec": {"nodeName": node, "restartPolicy": "Never", "containers": [
                    {"name": "trainer", "volumeMounts": [{"name": "c", "mountPath": "/checkpoint"}]},
                    {"name": "processor"}, {"name": "monitor"}]},
                "status": {"phase": "Running"}
            }),
            plan_input: PlanInput {
                restart_policy: RestartPolicy::Never,
                containers: [
                    ("trainer", ContainerState::Running),
                    ("processor", ContainerState::Terminated { exit_code: 0 }),
                    ("monitor", ContainerState::Running),
                ]
                .into_iter()
                .map(|(name, state)| ContainerInput {
                    name: name.into(),
                    init: false,
                    state,
                    restart_count: 0,
                })
                .collect(),
                single_node_claims: vec![],
                checkpoint_staged: false,
            },
            controller: None,
        }
    }

    /// A small world that answers effects the way the runtimes do: a created pod is
    /// Ready two seconds later, a checkpoint is staged a second after it is asked for,
    /// a measurement run takes its samples' time.
    #[derive(Debug, Clone)]
    struct Sim {
        source: Option<PodSeen>,
        target: Option<PodSeen>,
        node: NodeSeen,
        checkpoint: Option<(String, u64)>,
        stage_fails: Option<String>,
        stage_lost: bool,
        measurement: Option<(String, u64)>,
        runs: u32,
        target_fails: Option<String>,
        target_ready_after: u64,
        freeze_fails: Option<String>,
        freeze_error: Option<String>,
        claims_busy_until: u64,
        /// Effects carried out, for the assertions on order.
        log: Vec<String>,
        strategy_bbm: bool,
        /// No freeze: source and target overlap by design.
        overlap: bool,
        /// The source is a controller's (ReplicaSet rs-1, with sibling u-sib).
        controlled: bool,
        /// Evictions the disruption budget still refuses (`u32::MAX`: all).
        refusals: u32,
        refused: Option<String>,
        evicted_at: Option<u64>,
    }

    impl Sim {
        fn new() -> Self {
            Self {
                source: Some(pod("tf", "u-src", "w1")),
                target: None,
                node: NodeSeen::Ready,
                checkpoint: None,
                stage_fails: None,
                stage_lost: false,
                measurement: None,
                runs: 0,
                target_fails: None,
                target_ready_after: 2 * S,
                freeze_fails: None,
                freeze_error: None,
                claims_busy_until: 0,
                log: Vec::new(),
                strategy_bbm: false,
                overlap: false,
                controlled: false,
                refusals: 0,
                refused: None,
                evicted_at: None,
            }
        }

        fn controlled(refusals: u32) -> Self {
            let mut sim = Self::new();
            if let Some(s) = &mut sim.source {
                s.controller = Some(Controller {
                    kind: "ReplicaSet".into(),
                    name: "tf-abc".into(),
                    uid: "rs-1".into(),
                });
            }
            sim.controlled = true;
            sim.refusals = refusals;
            sim
        }

        fn bbm() -> Self {
            let mut sim = Self::new();
            if let Some(s) = &mut sim.source {
                s.plan_input.single_node_claims = vec!["data".into()];
            }
            sim.strategy_bbm = true;
            sim
        }

        fn world(&self, m: &Migration, now: u64) -> World {
            let checkpoint = match (&m.checkpoint, &self.checkpoint) {
                (Some(c), Some((id, at))) if &c.id == id => match &self.stage_fails {
                    Some(reason) => CheckpointSeen::Failed(reason.clone()),
                    None if now >= at + S => CheckpointSeen::Staged(Staged {
                        bytes: 4096,
                        files: 2,
                        copy_nanos: S / 2,
                        dirs: vec![format!("/ckpt/ai/tf/{id}/trainer")],
                    }),
                    None => CheckpointSeen::InProgress { bytes: 100 },
                },
                _ => CheckpointSeen::Unknown,
            };
            let measurement = match (m.current_measurement(), &self.measurement) {
                (Some(Measured { id: Some(id), .. }), Some((run, at))) if id == run => {
                    if now >= at + u64::from(m.settings.measure_samples) * S {
                        MeasurementSeen::Done {
                            cpu_cores: Some(if m.phase == Phase::MeasuringSource {
                                2.5
                            } else {
                                1.8
                            }),
                            memory_bytes: Some(700 << 20),
                            at_unix_nanos: now,
                            missing: None,
                        }
                    } else {
                        MeasurementSeen::Running
                    }
                }
                _ => MeasurementSeen::Unknown,
            };
            let mut target = self.target.clone();
            if let Some(t) = &mut target {
                t.failed = self.target_fails.clone();
            }
            World {
                slot_free: true,
                siblings: if self.controlled {
                    vec!["u-src".into(), "u-sib".into()]
                } else {
                    vec![]
                },
                eviction_refused: self.refused.clone(),
                source: self.source.clone(),
                target,
                target_node: self.node,
                checkpointed: vec!["trainer".into()],
                checkpoint,
                measurement,
                freeze_error: self.freeze_error.clone(),
                claims_detached: now >= self.claims_busy_until,
            }
        }

        fn tick(&mut self, now: u64) {
            // The controller replaces an evicted pod a second later.
            if self.evicted_at.is_some_and(|t| now >= t + S) && self.target.is_none() {
                let mut replacement = pod("tf-x7k2p", "u-rep", "w2");
                replacement.ready = false;
                self.target = Some(replacement);
                self.target_ready_after = now + 2 * S;
            }
            if let Some(t) = &mut self.target
                && self.target_fails.is_none()
                && now >= self.target_ready_after
            {
                t.ready = true;
            }
        }

        /// Carries out an effect; a measurement's id goes back into the record.
        fn apply(&mut self, m: &mut Migration, effect: &Effect, now: u64) {
            self.check_invariants_before(m, effect);
            match effect {
                Effect::Measure { pod, .. } => {
                    self.runs += 1;
                    let id = format!("run-{}", self.runs);
                    self.log.push(format!("measure {pod}"));
                    self.measurement = Some((id.clone(), now));
                    m.measurement_started(id);
                }
                Effect::StageCheckpoint { checkpoint_id, .. } => {
                    self.log.push(format!("stage {checkpoint_id}"));
                    if !self.stage_lost {
                        self.checkpoint = Some((checkpoint_id.clone(), now));
                    }
                }
                Effect::Freeze { frozen, .. } => {
                    self.log
                        .push(if *frozen { "freeze" } else { "thaw" }.to_owned());
                    match (&self.freeze_fails, *frozen) {
                        (Some(reason), true) => self.freeze_error = Some(reason.clone()),
                        _ => {
                            if let Some(s) = &mut self.source {
                                s.frozen = *frozen;
                            }
                        }
                    }
                }
                Effect::CreatePod {
                    pod: object, node, ..
                } => {
                    let name = object["metadata"]["name"].as_str().unwrap().to_owned();
                    self.log.push(format!("create {name} on {node}"));
                    if name == "tf" {
                        if self.source.is_none() {
                            let mut back = pod("tf", "u-back", node);
                            back.object = object.clone();
                            self.source = Some(back);
                        }
                    } else if self.target.is_none() {
                        let mut t = pod(&name, "u-tgt", node);
                        t.ready = false;
                        t.object = object.clone();
                        self.target = Some(t);
                        self.target_ready_after = now + 2 * S;
                    }
                }
                Effect::Evict { name, uid, .. } => {
                    self.log.push(format!("evict {name}"));
                    assert_eq!(uid, "u-src");
                    if self.refusals > 0 {
                        self.refusals = self
                            .refusals
                            .saturating_sub(u32::from(self.refusals != u32::MAX));
                        self.refused = Some("refused by disruption budget tf-pdb".into());
                    } else if self.source.is_some() {
                        self.source = None;
                        self.refused = None;
                        self.evicted_at = Some(now);
                    }
                }
                Effect::DeletePod { name, uid, .. } => {
                    self.log.push(format!("delete {name}"));
                    if self.source.as_ref().is_some_and(|s| &s.uid == uid) {
                        self.source = None;
                        self.claims_busy_until = now + 3 * S;
                    }
                    if self.target.as_ref().is_some_and(|t| &t.uid == uid) {
                        self.target = None;
                        self.claims_busy_until = now + 3 * S;
                    }
                }
            }
            self.check_invariants_after();
        }

        fn check_invariants_before(&self, m: &Migration, effect: &Effect) {
            if self.controlled {
                assert!(
                    matches!(
                        effect,
                        Effect::Evict { .. }
                            | Effect::Measure { .. }
                            | Effect::StageCheckpoint { .. }
                    ),
                    "a controller-owned pod is only evicted, never created, frozen or deleted: {effect:?}"
                );
            }
            if let Effect::DeletePod { uid, .. } = effect
                && uid == "u-src"
                && !self.strategy_bbm
            {
                assert!(
                    self.target.as_ref().is_some_and(|t| t.ready),
                    "make-before-break deleted the source before the target was Ready: {m:#?}"
                );
            }
            if let Effect::CreatePod { .. } = effect
                && self.strategy_bbm
            {
                assert!(
                    self.source.as_ref().is_none_or(|s| s.uid != "u-src"),
                    "break-before-make created a pod while the source still held its claims"
                );
            }
        }

        fn check_invariants_after(&self) {
            let source_runs = self.source.as_ref().is_some_and(|s| !s.frozen);
            assert!(
                !source_runs || self.target.is_none() || self.strategy_bbm || self.overlap,
                "two running copies: {self:#?}"
            );
        }
    }

    /// Runs the migration to its end, one step per simulated second (and again at once
    /// after a transition). `crash_at`: at that step the record is stored but the
    /// effects are lost, as when the coordinator dies right after the write.
    fn run(mut m: Migration, sim: &mut Sim, crash_at: Option<usize>) -> Migration {
        let mut now = m.created_unix_nanos;
        for i in 0..2000 {
            sim.tick(now);
            let (mut next, effects) = step(&m, &sim.world(&m, now), now);
            if crash_at != Some(i) {
                for e in &effects {
                    sim.apply(&mut next, e, now);
                }
            }
            let moved = next.phase != m.phase;
            m = next;
            if m.phase.is_final() {
                return m;
            }
            if !moved {
                now += S;
            }
        }
        panic!("the migration never ended: {m:#?}");
    }

    fn new(preserve_pv: bool, samples: u32) -> Migration {
        Migration::new(
            "migration-1a2b3c4d".into(),
            request(preserve_pv),
            settings(samples),
            T0,
        )
    }

    fn phases(m: &Migration) -> Vec<&'static str> {
        m.steps.iter().map(|s| s.phase.as_str()).collect()
    }

    #[test]
    fn make_before_break_goes_through_every_phase_in_order() {
        let mut sim = Sim::new();
        let m = run(new(true, 3), &mut sim, None);
        assert_eq!(
            phases(&m),
            [
                "pending",
                "measuring_source",
                "checkpointing",
                "freezing",
                "creating_target",
                "waiting_ready",
                "deleting_source",
                "measuring_target",
                "completed"
            ]
        );
        assert_eq!(
            sim.log,
            [
                "measure tf",
                "stage migration-1a2b3c4d-1",
                "freeze",
                "create tf-1a2b3c4d on w2",
                "delete tf",
                "measure tf-1a2b3c4d"
            ]
        );
        assert_eq!(m.status(), "completed");
        assert_eq!(m.error, None);
        assert_eq!(m.before.cpu_cores, Some(2.5));
        assert_eq!(m.after.cpu_cores, Some(1.8));
        assert_eq!(m.after.memory_bytes, Some(700 << 20));
        let target = &sim.target.as_ref().unwrap().object;
        assert_eq!(
            target["metadata"]["annotations"]["aistor.io/restore-from"],
            "migration-1a2b3c4d-1"
        );
        let containers: Vec<&str> = target["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(containers, ["trainer", "monitor"]);
        let staged = m.checkpoint.as_ref().unwrap().staged.as_ref().unwrap();
        assert_eq!(staged.bytes, 4096);
        // Only the container that mounts the checkpoint path is restored.
        let actions: Vec<Action> = m
            .plan
            .as_ref()
            .unwrap()
            .containers
            .iter()
            .map(|c| c.action)
            .collect();
        assert_eq!(
            actions,
            [Action::Restore, Action::Completed, Action::Recreate]
        );
        assert!(
            m.plan.as_ref().unwrap().containers[2]
                .why
                .contains("mounts no checkpoint path")
        );
        // Frozen, then created; Ready two seconds after creation.
        assert_eq!(m.downtime_nanos(), Some(2 * S));
        assert!(m.ended_unix_nanos.is_some());
        assert_eq!(
            m.checkpoint_dir().as_deref(),
            Some("/ckpt/ai/tf/migration-1a2b3c4d-1")
        );
        assert!(m.time_to_resume_nanos().unwrap() > m.downtime_nanos().unwrap());
        assert!(m.steps.iter().all(|s| s.ended_unix_nanos.is_some()));
        // The record survives a round trip through its stored form.
        let stored = serde_json::to_value(&m).unwrap();
        assert_eq!(serde_json::from_value::<Migration>(stored).unwrap(), m);
    }

    #[test]
    fn a_crash_at_any_step_still_completes_with_each_effect_once() {
        let mut clean = Sim::new();
        let reference = run(new(true, 3), &mut clean, None);
        for crash_at in 0..40 {
            let mut sim = Sim::new();
            let m = run(new(true, 3), &mut sim, Some(crash_at));
            assert_eq!(m.phase, Phase::Completed, "crash at {crash_at}: {m:#?}");
            assert_eq!(phases(&m), phases(&reference), "crash at {crash_at}");
            for once in ["stage", "create", "delete"] {
                assert_eq!(
                    sim.log.iter().filter(|l| l.starts_with(once)).count(),
                    1,
                    "crash at {crash_at}: {once} more than once: {:?}",
                    sim.log
                );
            }
            assert!(sim.target.is_some() && sim.source.is_none());
        }
        for crash_at in 0..40 {
            let mut sim = Sim::bbm();
            let m = run(new(true, 3), &mut sim, Some(crash_at));
            assert_eq!(m.phase, Phase::Completed, "bbm crash at {crash_at}: {m:#?}");
        }
    }

    #[test]
    fn break_before_make_deletes_first_and_waits_for_the_claims() {
        let mut sim = Sim::bbm();
        let m = run(new(true, 0), &mut sim, None);
        assert_eq!(
            phases(&m),
            [
                "pending",
                "checkpointing",
                "deleting_source",
                "waiting_detach",
                "creating_target",
                "waiting_ready",
                "completed"
            ]
        );
        assert_eq!(
            sim.log,
            [
                "stage migration-1a2b3c4d-1",
                "delete tf",
                "create tf-1a2b3c4d on w2"
            ]
        );
        assert_eq!(
            m.strategy(),
            Some(&Strategy::BreakBeforeMake {
                claims: vec!["data".into()]
            })
        );
        assert_eq!(
            m.before.missing.as_deref(),
            Some("not measured: measurement runs are off")
        );
        // From the delete to Ready: three seconds for the claims, two to be Ready.
        assert_eq!(m.downtime_nanos(), Some(5 * S));
    }

    #[test]
    fn a_target_that_fails_rolls_back_make_before_break_deleting_it_then_thawing() {
        let mut sim = Sim::new();
        sim.target_fails = Some("ErrImageNeverPull".into());
        let m = run(new(true, 0), &mut sim, None);
        assert_eq!(m.phase, Phase::Failed);
        assert_eq!(
            m.error.as_deref(),
            Some("the target pod tf-1a2b3c4d failed: ErrImageNeverPull; the source was thawed")
        );
        assert_eq!(
            &sim.log[2..],
            ["create tf-1a2b3c4d on w2", "delete tf-1a2b3c4d", "thaw"]
        );
        let source = sim.source.unwrap();
        assert!(!source.frozen);
        assert_eq!(source.uid, "u-src");
        assert!(sim.target.is_none());
    }

    #[test]
    fn a_failed_break_before_make_puts_the_pod_back_on_its_node() {
        let mut sim = Sim::bbm();
        sim.target_fails = Some("restore failed".into());
        let m = run(new(true, 0), &mut sim, None);
        assert_eq!(m.phase, Phase::Failed);
        assert_eq!(
            m.error.as_deref(),
            Some(
                "the target pod tf-1a2b3c4d failed: restore failed; the pod was put back on w1 as it was"
            )
        );
        assert_eq!(
            &sim.log[1..],
            [
                "delete tf",
                "create tf-1a2b3c4d on w2",
                "delete tf-1a2b3c4d",
                "create tf on w1"
            ]
        );
        let back = sim.source.unwrap();
        assert_eq!(back.node.as_deref(), Some("w1"));
        assert_eq!(
            back.object["metadata"]["annotations"]["aistor.io/restore-from"],
            "migration-1a2b3c4d-1"
        );
    }

    #[test]
    fn the_timeout_and_a_cancel_roll_back_before_the_target_is_ready() {
        // The target never becomes Ready (the sim is never ticked): the deadline
        // (300 s) rolls it back.
        let mut m = new(true, 0);
        let mut now = T0;
        let mut sim = Sim::new();
        for _ in 0..2000 {
            let (mut next, effects) = step(&m, &sim.world(&m, now), now);
            for e in &effects {
                sim.apply(&mut next, e, now);
            }
            m = next;
            if m.phase.is_final() {
                break;
            }
            now += S;
        }
        assert_eq!(m.phase, Phase::Failed);
        assert!(
            m.error
                .as_deref()
                .unwrap()
                .starts_with("timed out after 300 s while waiting_ready"),
            "{:?}",
            m.error
        );
        // Deadline at 300 s: the target deleted then, the source thawed a second later.
        assert_eq!(m.ended_unix_nanos, Some(T0 + 302 * S));

        let mut sim = Sim::new();
        let mut m = new(true, 0);
        let mut now = T0;
        for _ in 0..1000 {
            if m.phase == Phase::WaitingReady {
                break;
            }
            let (mut next, effects) = step(&m, &sim.world(&m, now), now);
            for e in &effects {
                sim.apply(&mut next, e, now);
            }
            m = next;
            now += S / 2;
        }
        m.cancel().unwrap();
        let m = run(m, &mut sim, None);
        assert_eq!(m.phase, Phase::Cancelled);
        assert_eq!(m.status(), "cancelled");
        assert_eq!(m.message, "cancelled on request; the source was thawed");
        assert!(sim.target.is_none());
        assert!(!sim.source.unwrap().frozen);
    }

    #[test]
    fn past_the_point_of_no_return_a_cancel_is_refused_and_a_pending_one_just_ends() {
        let mut sim = Sim::new();
        let mut m = new(true, 3);
        let mut now = T0;
        for _ in 0..1000 {
            if m.phase == Phase::MeasuringTarget {
                break;
            }
            sim.tick(now);
            let (mut next, effects) = step(&m, &sim.world(&m, now), now);
            for e in &effects {
                sim.apply(&mut next, e, now);
            }
            m = next;
            now += S;
        }
        let err = m.clone().cancel().unwrap_err();
        assert!(err.contains("past the point of no return"), "{err}");
        let done = run(m, &mut sim, None);
        assert_eq!(
            done.clone().cancel().unwrap_err(),
            "migration migration-1a2b3c4d has already completed"
        );

        let mut queued = new(true, 3);
        queued.cancel().unwrap();
        let (ended, effects) = step(&queued, &Sim::new().world(&queued, T0), T0);
        assert!(effects.is_empty());
        assert_eq!(ended.phase, Phase::Cancelled);
    }

    #[test]
    fn a_failed_checkpoint_rolls_back_unless_force_restart_then_it_starts_cold() {
        let mut sim = Sim::new();
        sim.stage_fails = Some("hook timed out".into());
        let m = run(new(true, 0), &mut sim, None);
        assert_eq!(m.phase, Phase::Failed);
        assert_eq!(
            m.error.as_deref(),
            Some("checkpoint migration-1a2b3c4d-1 failed: hook timed out")
        );
        assert_eq!(sim.log, ["stage migration-1a2b3c4d-1"]);
        assert_eq!(
            m.checkpoint.as_ref().unwrap().error.as_deref(),
            Some("checkpoint migration-1a2b3c4d-1 failed: hook timed out")
        );

        let mut sim = Sim::new();
        sim.stage_fails = Some("hook timed out".into());
        let mut forced = new(true, 0);
        forced.request.force_restart = true;
        let m = run(forced, &mut sim, None);
        assert_eq!(m.phase, Phase::Completed);
        let target = &sim.target.unwrap().object;
        assert!(
            target["metadata"]["annotations"]
                .get("aistor.io/restore-from")
                .is_none()
        );
        assert_eq!(
            m.checkpoint.as_ref().unwrap().error.as_deref(),
            Some("checkpoint migration-1a2b3c4d-1 failed: hook timed out")
        );
        let trainer = &m.plan.as_ref().unwrap().containers[0];
        assert_eq!(trainer.action, Action::Recreate);
        assert!(trainer.why.contains("starts cold"), "{}", trainer.why);
    }

    #[test]
    fn a_stage_never_sent_is_sent_whatever_the_world_says_of_it() {
        let mut m = new(true, 0);
        let sim = Sim::new();
        let (planned, _) = step(&m, &sim.world(&m, T0), T0);
        assert_eq!(planned.phase, Phase::Checkpointing);
        m = planned;
        m.checkpoint.as_mut().unwrap().sent_unix_nanos = 0;
        let mut w = sim.world(&m, T0);
        w.checkpoint = CheckpointSeen::InProgress { bytes: 0 };
        let (sent, effects) = step(&m, &w, T0 + S);
        assert!(
            matches!(&effects[..], [Effect::StageCheckpoint { checkpoint_id, .. }] if checkpoint_id == "migration-1a2b3c4d-1")
        );
        assert_eq!(sent.checkpoint.as_ref().unwrap().sent_unix_nanos, T0 + S);
        // Sent: now it waits while the agent copies.
        let (waiting, effects) = step(&sent, &w, T0 + 40 * S);
        assert!(effects.is_empty());
        assert_eq!(waiting, sent);
    }

    #[test]
    fn an_unanswered_stage_is_asked_again_under_a_new_id_and_then_given_up() {
        let mut sim = Sim::new();
        sim.stage_lost = true;
        let m = run(new(true, 0), &mut sim, None);
        assert_eq!(
            sim.log,
            [
                "stage migration-1a2b3c4d-1",
                "stage migration-1a2b3c4d-2",
                "stage migration-1a2b3c4d-3"
            ]
        );
        assert_eq!(m.phase, Phase::Failed);
        assert_eq!(
            m.error.as_deref(),
            Some("checkpoint migration-1a2b3c4d-3 failed: no report mentioned it in 3 attempts")
        );
        // Each attempt waited its full interval.
        assert_eq!(
            m.ended_unix_nanos.unwrap() - m.created_unix_nanos,
            3 * STAGE_UNSEEN_AFTER_NANOS
        );
    }

    #[test]
    fn without_preserve_pv_or_a_checkpoint_path_nothing_is_staged_and_all_start_cold() {
        for (preserve, checkpointed) in [(false, true), (true, false)] {
            let mut sim = Sim::new();
            let mut m = new(preserve, 0);
            let mut now = T0;
            for _ in 0..2000 {
                sim.tick(now);
                let mut w = sim.world(&m, now);
                if !checkpointed {
                    w.checkpointed.clear();
                }
                let (mut next, effects) = step(&m, &w, now);
                for e in &effects {
                    sim.apply(&mut next, e, now);
                }
                m = next;
                if m.phase.is_final() {
                    break;
                }
                now += S;
            }
            assert_eq!(m.phase, Phase::Completed);
            assert!(m.checkpoint.is_none());
            assert!(!sim.log.iter().any(|l| l.starts_with("stage")));
            assert_eq!(
                m.plan.as_ref().unwrap().containers[0].action,
                Action::Recreate
            );
        }
    }

    #[test]
    fn a_freeze_the_agent_refuses_rolls_back_without_creating_anything() {
        let mut sim = Sim::new();
        sim.freeze_fails = Some("freezer.state stuck in FREEZING".into());
        let m = run(new(false, 0), &mut sim, None);
        assert_eq!(m.phase, Phase::Failed);
        assert_eq!(
            m.error.as_deref(),
            Some("the source could not be frozen: freezer.state stuck in FREEZING")
        );
        assert_eq!(sim.log, ["freeze"]);
        let mut unfrozen = new(false, 0);
        unfrozen.settings.freeze = false;
        let mut sim = Sim::new();
        sim.overlap = true;
        let m = run(unfrozen, &mut sim, None);
        assert_eq!(m.phase, Phase::Completed);
        assert!(!sim.log.iter().any(|l| l == "freeze"));
    }

    #[test]
    fn what_the_world_says_at_the_start_is_checked() {
        type Breaks = fn(&mut Sim);
        let cases: [(Breaks, &str); 4] = [
            (|s| s.source = None, "pod ai/tf not found"),
            (
                |s| s.source.as_mut().unwrap().node = Some("w9".into()),
                "pod ai/tf is on node w9, not on w1",
            ),
            (|s| s.node = NodeSeen::Stale, "target node w2 is stale"),
            (|s| s.node = NodeSeen::Unknown, "target node w2 is unknown"),
        ];
        for (break_it, error) in cases {
            let mut sim = Sim::new();
            break_it(&mut sim);
            let m = new(true, 3);
            let (m, effects) = step(&m, &sim.world(&m, T0), T0);
            assert!(effects.is_empty());
            assert_eq!(m.phase, Phase::Failed);
            assert_eq!(m.error.as_deref(), Some(error));
        }
        let mut sim = Sim::new();
        for c in &mut sim.source.as_mut().unwrap().plan_input.containers {
            c.state = ContainerState::Terminated { exit_code: 0 };
        }
        let m = new(true, 3);
        let (m, _) = step(&m, &sim.world(&m, T0), T0);
        assert!(
            m.error
                .as_deref()
                .unwrap()
                .starts_with("nothing to migrate: the pod has nothing left to run"),
            "{:?}",
            m.error
        );
        let mut full = World {
            slot_free: false,
            ..Sim::new().world(&m, T0)
        };
        let queued = new(true, 3);
        let (still, effects) = step(&queued, &full, T0);
        assert!(effects.is_empty());
        assert_eq!(still.phase, Phase::Pending);
        assert_eq!(still.message, "waiting for a free migration slot");
        let late = T0 + 300 * S;
        let (m, _) = step(&queued, &full, late);
        assert_eq!(
            m.error.as_deref(),
            Some("timed out waiting for a free migration slot")
        );
        full.slot_free = true;
        let (m, _) = step(&queued, &full, late - 1);
        assert_eq!(m.phase, Phase::MeasuringSource);
    }

    #[test]
    fn measurements_that_fail_or_never_answer_are_missing_with_the_reason() {
        let mut m = new(true, 3);
        m.enter(Phase::MeasuringTarget, T0, "x");
        m.target_ready_unix_nanos = Some(T0);
        let mut w = Sim::new().world(&m, T0);
        w.target = Some(pod("tf-1a2b3c4d", "u-tgt", "w2"));
        // Settling: nothing yet.
        let (same, effects) = step(&m, &w, T0 + 4 * S);
        assert!(effects.is_empty());
        assert_eq!(same, m);
        let (started, effects) = step(&m, &w, T0 + 5 * S);
        assert!(
            matches!(&effects[..], [Effect::Measure { pod, node, samples: 3, .. }] if pod == "tf-1a2b3c4d" && node == "w2")
        );
        // Sent and not recorded: sent again only after the resend interval.
        let (again, effects) = step(&started, &w, T0 + 9 * S);
        assert!(effects.is_empty());
        let (_, effects) = step(&again, &w, T0 + 10 * S);
        assert_eq!(effects.len(), 1);

        let mut running = started.clone();
        running.measurement_started("run-7".into());
        w.measurement = MeasurementSeen::Failed("pod not found on w2".into());
        let (done, _) = step(&running, &w, T0 + 6 * S);
        assert_eq!(done.phase, Phase::Completed);
        assert_eq!(done.after.id.as_deref(), Some("run-7"));
        assert_eq!(
            done.after.missing.as_deref(),
            Some("not measured: pod not found on w2")
        );

        w.measurement = MeasurementSeen::Running;
        let budget = 5 * S + 4 * S + MEASURE_SLACK_NANOS;
        let (waiting, _) = step(&running, &w, T0 + budget);
        assert_eq!(waiting.phase, Phase::MeasuringTarget);
        let (lost, _) = step(&running, &w, T0 + budget + 1);
        assert_eq!(
            lost.after.missing.as_deref(),
            Some("not measured: the measurement run gave no result within 69 s")
        );
        w.measurement = MeasurementSeen::Unknown;
        let (unknown, _) = step(&running, &w, T0 + 6 * S);
        assert_eq!(
            unknown.after.missing.as_deref(),
            Some("not measured: measurement run run-7 is unknown")
        );
        w.target = None;
        let (gone, _) = step(&running, &w, T0 + 6 * S);
        assert_eq!(
            gone.after.missing.as_deref(),
            Some("not measured: the target pod tf-1a2b3c4d is gone")
        );
    }

    #[test]
    fn a_source_deleted_by_someone_else_ends_the_migration() {
        let mut sim = Sim::new();
        let mut m = new(true, 3);
        let (next, effects) = step(&m, &sim.world(&m, T0), T0);
        for e in &effects {
            sim.apply(&mut m.clone(), e, T0);
        }
        m = next;
        assert_eq!(m.phase, Phase::MeasuringSource);
        sim.source = Some(pod("tf", "u-other", "w1"));
        let (m, _) = step(&m, &sim.world(&m, T0), T0 + S);
        assert_eq!(
            m.error.as_deref(),
            Some("the source pod was deleted during the migration")
        );
    }

    /// Steps `m` through the simulated world until `phase` (at most 1000 steps).
    fn until_phase(mut m: Migration, sim: &mut Sim, phase: Phase) -> (Migration, u64) {
        let mut now = m.created_unix_nanos;
        for _ in 0..1000 {
            if m.phase == phase {
                return (m, now);
            }
            sim.tick(now);
            let (mut next, effects) = step(&m, &sim.world(&m, now), now);
            for e in &effects {
                sim.apply(&mut next, e, now);
            }
            m = next;
            now += S / 2;
        }
        panic!("never reached {phase:?}: {m:#?}");
    }

    #[test]
    fn past_its_deadline_a_committed_migration_still_finishes_and_an_ended_one_stays() {
        // Make-before-break, deleting the source: the target runs; the deadline no longer
        // rolls anything back.
        let mut sim = Sim::new();
        let (deleting, _) = until_phase(new(true, 0), &mut sim, Phase::DeletingSource);
        let late = deleting.deadline_unix_nanos + S;
        // The delete it sent has not shown yet: the source is still there, frozen.
        let mut stuck = sim.clone();
        stuck.source = Some(PodSeen {
            frozen: true,
            ..pod("tf", "u-src", "w1")
        });
        let (next, effects) = step(&deleting, &stuck.world(&deleting, late), late);
        assert_eq!(next.phase, Phase::DeletingSource);
        assert!(
            matches!(&effects[..], [Effect::DeletePod { name, uid, .. }] if name == "tf" && uid == "u-src"),
            "{effects:?}"
        );
        assert!(next.rollback.is_none());

        // Break-before-make, deleting the source: not committed yet, so the deadline
        // rolls it back (the pod is put back once it is gone).
        let mut sim = Sim::bbm();
        let (deleting, _) = until_phase(new(true, 0), &mut sim, Phase::DeletingSource);
        let late = deleting.deadline_unix_nanos + S;
        let (next, _) = step(&deleting, &sim.world(&deleting, late), late);
        assert!(next.rollback.is_some(), "{next:#?}");
        assert!(
            next.message
                .starts_with("rolling back: timed out after 300 s while deleting_source"),
            "{}",
            next.message
        );

        // An ended migration never moves again, whatever the time or a cancel flag.
        let mut done = run(new(true, 0), &mut Sim::new(), None);
        done.cancel_requested = true;
        let late = done.deadline_unix_nanos + 10 * S;
        let (same, effects) = step(&done, &Sim::new().world(&done, late), late);
        assert_eq!(same, done);
        assert!(effects.is_empty());
        assert_eq!(Phase::Failed.status(), "failed");
        assert_eq!(Phase::Completed.status(), "completed");
    }

    #[test]
    fn the_target_restores_only_a_staged_checkpoint_into_containers_that_restore() {
        let mut sim = Sim::new();
        let (mut m, _) = until_phase(new(true, 0), &mut sim, Phase::CreatingTarget);
        assert_eq!(restore_from(&m).as_deref(), Some("migration-1a2b3c4d-1"));
        let staged = m.checkpoint.clone();
        m.checkpoint.as_mut().unwrap().staged = None;
        assert_eq!(restore_from(&m), None, "not staged");
        m.checkpoint = staged;
        for c in &mut m.plan.as_mut().unwrap().containers {
            if c.action == Action::Restore {
                c.action = Action::Recreate;
            }
        }
        assert_eq!(restore_from(&m), None, "nothing restores");
    }

    #[test]
    fn creating_waits_for_a_ready_target_node_and_does_not_resend_within_the_interval() {
        let mut sim = Sim::new();
        let (m, now) = until_phase(new(false, 0), &mut sim, Phase::Freezing);
        // Frozen, but the target node went stale: nothing is created.
        let mut frozen = sim.clone();
        frozen.source.as_mut().unwrap().frozen = true;
        frozen.node = NodeSeen::Stale;
        let (creating, effects) = step(&m, &frozen.world(&m, now), now);
        assert_eq!(creating.phase, Phase::CreatingTarget);
        assert!(effects.is_empty(), "{effects:?}");
        frozen.node = NodeSeen::Ready;
        let (sent, effects) = step(&creating, &frozen.world(&creating, now + S), now + S);
        assert!(matches!(&effects[..], [Effect::CreatePod { node, .. }] if node == "w2"));
        // Not there yet: asked again only after the resend interval.
        let (_, effects) = step(&sent, &frozen.world(&sent, now + 2 * S), now + 2 * S);
        assert!(effects.is_empty());
        let (_, effects) = step(
            &sent,
            &frozen.world(&sent, now + S + RESEND_AFTER_NANOS),
            now + S + RESEND_AFTER_NANOS,
        );
        assert_eq!(effects.len(), 1);
    }

    #[test]
    fn deleting_the_source_is_not_resent_early_and_terminating_counts_only_without_claims() {
        for bbm in [false, true] {
            let mut sim = if bbm { Sim::bbm() } else { Sim::new() };
            let (m, now) = until_phase(new(true, 0), &mut sim, Phase::DeletingSource);
            let mut world = sim.world(&m, now);
            world.source = Some(PodSeen {
                frozen: !bbm,
                ..pod("tf", "u-src", "w1")
            });
            if !bbm {
                world.target = sim.world(&m, now).target;
            }
            // Still there within the interval: nothing sent again.
            let (same, effects) = step(&m, &world, now + S);
            assert!(effects.is_empty(), "bbm {bbm}: {effects:?}");
            assert_eq!(same.phase, Phase::DeletingSource);
            // Being deleted: make-before-break moves on, break-before-make waits for it
            // to be gone (its claims are still mounted).
            world.source.as_mut().unwrap().terminating = true;
            let (next, _) = step(&m, &world, now + S);
            // (no measurement runs here: make-before-break ends at once)
            let expected = if bbm {
                Phase::DeletingSource
            } else {
                Phase::Completed
            };
            assert_eq!(next.phase, expected, "bbm {bbm}");
        }
    }

    #[test]
    fn a_rollback_puts_back_only_what_it_deleted_once_it_is_gone_and_its_claims_are_free() {
        // Break-before-make, the target failed after the source was deleted.
        let mut sim = Sim::bbm();
        sim.target_fails = Some("crash".into());
        let (m, now) = until_phase(new(true, 0), &mut sim, Phase::RollingBack);
        assert!(sim.target.is_none(), "the failed target was deleted first");
        let mut world = sim.world(&m, now);
        // The source, deleted on our request, is still terminating: wait.
        world.source = Some(PodSeen {
            terminating: true,
            ..pod("tf", "u-src", "w1")
        });
        let (same, effects) = step(&m, &world, now + 10 * S);
        assert!(effects.is_empty());
        assert_eq!(same.phase, Phase::RollingBack);
        // Gone, but its claims are still mounted: wait.
        world.source = None;
        world.claims_detached = false;
        let (same, effects) = step(&m, &world, now + 10 * S);
        assert!(effects.is_empty());
        assert_eq!(same.phase, Phase::RollingBack);
        world.claims_detached = true;
        let (sent, effects) = step(&m, &world, now + 10 * S);
        assert!(matches!(&effects[..], [Effect::CreatePod { node, .. }] if node == "w1"));
        let (_, effects) = step(&sent, &world, now + 11 * S);
        assert!(effects.is_empty(), "not again within the interval");

        // Make-before-break, the target failed; someone else deleted or replaced the
        // source meanwhile: nothing is put back, and the message says what happened.
        let mut sim = Sim::new();
        sim.target_fails = Some("crash".into());
        let (m, now) = until_phase(new(true, 0), &mut sim, Phase::RollingBack);
        let mut world = sim.world(&m, now + 10 * S);
        world.target = None;
        world.source = None;
        let (ended, effects) = step(&m, &world, now + 10 * S);
        assert!(effects.is_empty(), "{effects:?}");
        assert_eq!(ended.phase, Phase::Failed);
        assert!(
            ended
                .error
                .as_deref()
                .unwrap()
                .ends_with("; the source pod was deleted outside the migration"),
            "{:?}",
            ended.error
        );
        world.source = Some(pod("tf", "u-new", "w1"));
        let (ended, effects) = step(&m, &world, now + 10 * S);
        assert!(effects.is_empty());
        assert!(
            ended
                .error
                .as_deref()
                .unwrap()
                .ends_with("; the source pod was replaced outside the migration"),
            "{:?}",
            ended.error
        );
    }

    #[test]
    fn statuses_and_names_are_the_apis() {
        assert_eq!(Phase::Pending.status(), "pending");
        assert_eq!(Phase::Checkpointing.status(), "running");
        assert_eq!(Phase::RollingBack.status(), "running");
        assert!(Phase::Cancelled.is_final() && !Phase::RollingBack.is_final());
        assert_eq!(
            serde_json::to_value(Phase::WaitingReady).unwrap(),
            "waiting_ready"
        );
        let m = Migration::new(
            "m".into(),
            Request {
                timeout_secs: 0,
                ..request(true)
            },
            settings(3),
            T0,
        );
        assert_eq!(m.deadline_unix_nanos, T0 + 600 * S);
        assert_eq!(m.target_name, "tf-m");
    }

    #[test]
    fn a_controller_owned_pod_is_evicted_and_its_controllers_replacement_awaited() {
        let mut sim = Sim::controlled(0);
        let (evicting, _) = until_phase(new(true, 3), &mut sim, Phase::Evicting);
        let source = evicting.source.as_ref().unwrap();
        assert_eq!(source.controller.as_ref().unwrap().uid, "rs-1");
        // The source itself is not its own sibling.
        assert_eq!(source.siblings, ["u-sib"]);
        assert_eq!(evicting.target_name, "", "the controller names its pod");
        assert_eq!(
            evicting.reservation(),
            Some(Reservation {
                migration_id: "migration-1a2b3c4d".into(),
                namespace: "ai".into(),
                owner_uid: "rs-1".into(),
                node: "w2".into(),
            })
        );
        let mut sim = Sim::controlled(0);
        let m = run(new(true, 3), &mut sim, None);
        assert_eq!(
            phases(&m),
            [
                "pending",
                "measuring_source",
                "checkpointing",
                "evicting",
                "waiting_ready",
                "measuring_target",
                "completed"
            ]
        );
        assert_eq!(
            sim.log,
            [
                "measure tf",
                "stage migration-1a2b3c4d-1",
                "evict tf",
                "measure tf-x7k2p"
            ]
        );
        assert_eq!(m.target_name, "tf-x7k2p");
        assert_eq!(m.target_uid.as_deref(), Some("u-rep"));
        // Evicted, then Ready 3 s later (1 s to be made, 2 s to start).
        assert_eq!(m.downtime_nanos(), Some(3 * S));
        assert_eq!(m.reservation(), None, "a completed migration holds nothing");
        assert_eq!(m.after.cpu_cores, Some(1.8));
    }

    #[test]
    fn a_refused_eviction_is_asked_again_with_the_reason_on_record() {
        let mut sim = Sim::controlled(2);
        let (m, mut now) = until_phase(new(false, 0), &mut sim, Phase::Evicting);
        let mut m = m;
        let mut messages = Vec::new();
        for _ in 0..100 {
            if m.phase != Phase::Evicting {
                break;
            }
            sim.tick(now);
            let (mut next, effects) = step(&m, &sim.world(&m, now), now);
            for e in &effects {
                sim.apply(&mut next, e, now);
            }
            messages.push(next.message.clone());
            m = next;
            now += S;
        }
        assert_eq!(m.phase, Phase::WaitingReady, "{m:#?}");
        assert_eq!(sim.log.iter().filter(|l| *l == "evict tf").count(), 3);
        assert!(
            messages.iter().any(|msg| msg
                == "the eviction was refused; asking again until the timeout: refused by disruption budget tf-pdb"),
            "{messages:?}"
        );
        // Asked again only after the resend interval, not every step.
        assert!(
            messages.len() as u64 >= 2 * RESEND_AFTER_NANOS / S,
            "{messages:?}"
        );
        assert_eq!(m.eviction_refused, None, "cleared once evicted");
        assert_eq!(run(m, &mut sim, None).phase, Phase::Completed);
    }

    #[test]
    fn a_budget_that_never_allows_fails_the_migration_at_its_timeout_with_the_pod_in_place() {
        let mut sim = Sim::controlled(u32::MAX);
        let m = run(new(false, 0), &mut sim, None);
        assert_eq!(m.phase, Phase::Failed);
        let error = m.error.as_deref().unwrap();
        assert!(
            error.starts_with("timed out after 300 s while evicting"),
            "{error}"
        );
        assert!(
            error.ends_with(
                "(the last eviction was refused: refused by disruption budget tf-pdb); the source was not evicted"
            ),
            "{error}"
        );
        assert!(sim.source.is_some(), "the pod stays where it was");
        assert!(sim.target.is_none());
        assert_eq!(m.reservation(), None);
    }

    #[test]
    fn a_failed_replacement_is_left_to_its_controller_and_a_cancel_before_eviction_ends_it() {
        let mut sim = Sim::controlled(0);
        sim.target_fails = Some("ImagePullBackOff".into());
        let m = run(new(false, 0), &mut sim, None);
        assert_eq!(m.phase, Phase::Failed);
        assert_eq!(
            m.error.as_deref(),
            Some(
                "the target pod tf-x7k2p failed: ImagePullBackOff; the source was evicted: its controller's replacement is placed without the reservation"
            )
        );
        assert!(sim.target.is_some(), "the controller's pod is not deleted");

        let mut sim = Sim::controlled(u32::MAX);
        let (mut m, now) = until_phase(new(false, 0), &mut sim, Phase::Evicting);
        m.cancel().unwrap();
        let (m, effects) = step(&m, &sim.world(&m, now), now);
        assert!(effects.is_empty());
        assert_eq!(m.phase, Phase::Cancelled);
        assert!(
            m.message.ends_with("the source was not evicted"),
            "{}",
            m.message
        );
    }

    #[test]
    fn a_record_from_before_controllers_reads_as_one_the_migration_moves() {
        let m = new(true, 0);
        let mut stored = serde_json::to_value(&m).unwrap();
        stored.as_object_mut().unwrap().remove("eviction_refused");
        let mut sim = Sim::new();
        let (with_source, _) = until_phase(m, &mut sim, Phase::Checkpointing);
        let mut old = serde_json::to_value(&with_source).unwrap();
        old["source"].as_object_mut().unwrap().remove("controller");
        old["source"].as_object_mut().unwrap().remove("siblings");
        let read: Migration = serde_json::from_value(old).unwrap();
        assert_eq!(read.controller(), None);
        assert_eq!(read, with_source);
        let read: Migration = serde_json::from_value(stored).unwrap();
        assert_eq!(read.eviction_refused, None);
    }
}
